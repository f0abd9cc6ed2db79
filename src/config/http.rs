//! `[http]`: the optional TCP listener for load balancers and Prometheus
//! (`health::tcp`). Off unless `listen` is set; `allow` lists the source networks
//! that may connect (loopback only by default).

use std::net::SocketAddr;

use crate::config::raw::RawHttp;
use crate::health::tcp_access::{Allow, Net};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSettings {
    /// Where to listen (`None`: no TCP listener).
    pub listen: Option<SocketAddr>,
    pub allow: Allow,
}

/// The `[http]` table; each problem is pushed as one line "http.key: problem".
pub fn validate(raw: &RawHttp, problems: &mut Vec<String>) -> HttpSettings {
    let listen = raw.listen.as_deref().and_then(|l| {
        let parsed = l.trim().parse::<SocketAddr>().map_err(|_| {
            format!("{l:?} is not an address and port like \"0.0.0.0:8008\" or \"[::]:8008\"")
        });
        match parsed {
            Ok(a) if a.port() == 0 => {
                problems.push(format!("http.listen: {l:?}: port 0 would be a random port"));
                None
            }
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(format!("http.listen: {e}"));
                None
            }
        }
    });
    let allow = raw
        .allow
        .iter()
        .filter_map(|n| {
            Net::parse(n)
                .map_err(|e| problems.push(format!("http.allow: {e}")))
                .ok()
        })
        .collect();
    HttpSettings {
        listen,
        allow: Allow(allow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(listen: Option<&str>, allow: &[&str]) -> RawHttp {
        RawHttp {
            listen: listen.map(str::to_owned),
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn off_by_default_and_loopback_only() {
        let mut p = Vec::new();
        let s = validate(&RawHttp::default(), &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.listen, None);
        assert!(s.allow.allows("127.0.0.1".parse().expect("ip")));
        assert!(s.allow.allows("::1".parse().expect("ip")));
        assert!(!s.allow.allows("10.0.0.1".parse().expect("ip")));
    }

    #[test]
    fn every_problem_is_one_line() {
        let mut p = Vec::new();
        let s = validate(
            &raw(Some("8008"), &["10.0.0.0/8", "nope", "10.1.0.0/8"]),
            &mut p,
        );
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("http.listen: \"8008\" is not an address and port"));
        assert!(p[1].starts_with("http.allow: \"nope\""));
        assert!(p[2].contains("host bits"), "{}", p[2]);
        assert_eq!(s.allow.0.len(), 1);
        let mut p = Vec::new();
        validate(&raw(Some("0.0.0.0:0"), &[]), &mut p);
        assert_eq!(
            p,
            ["http.listen: \"0.0.0.0:0\": port 0 would be a random port"]
        );
        let mut p = Vec::new();
        let s = validate(&raw(Some("[::]:8008"), &[]), &mut p);
        assert!(p.is_empty());
        assert_eq!(s.listen.map(|a| a.port()), Some(8008));
    }
}
