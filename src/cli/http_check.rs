//! `check-config` on this host for `[http] listen`: what `run` would meet when it
//! binds the TCP endpoint.

use std::io::ErrorKind;
use std::net::SocketAddr;

use crate::cli::host_check::{Finding, Level};

/// One finding about `listen` (None: no TCP listener configured). A trial bind: an
/// address this host does not have FAILs (`run` exits 78); a port in use is fine
/// when the running daemon holds it, and said so; a port below 1024 needs a
/// capability the unit does not grant.
pub fn listen_check(listen: Option<SocketAddr>) -> Option<Finding> {
    let addr = listen?;
    let finding = |level, text: String| Some(Finding { level, text });
    if addr.port() < 1024 {
        return finding(
            Level::Fail,
            format!(
                "http.listen {addr}: a port below 1024 needs CAP_NET_BIND_SERVICE, which the unit does not grant (use 8008)"
            ),
        );
    }
    match std::net::TcpListener::bind(addr) {
        Ok(_) => finding(Level::Ok, format!("http.listen {addr}: can be bound")),
        Err(e) if e.kind() == ErrorKind::AddrInUse => finding(
            Level::Warning,
            format!(
                "http.listen {addr}: the port is in use (by the running vip-arbiter? else run would exit 1)"
            ),
        ),
        Err(e) if e.kind() == ErrorKind::AddrNotAvailable => finding(
            Level::Fail,
            format!("http.listen {addr}: not an address of this host ({e})"),
        ),
        Err(e) => finding(Level::Fail, format!("http.listen {addr}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(listen: &str) -> Level {
        listen_check(Some(listen.parse().expect("an address")))
            .expect("a finding")
            .level
    }

    #[test]
    fn a_trial_bind_says_what_run_would_meet() {
        assert!(listen_check(None).is_none());
        assert_eq!(level("192.0.2.1:8008"), Level::Fail, "not this host's");
        assert_eq!(level("127.0.0.1:80"), Level::Fail, "privileged port");
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = held.local_addr().expect("addr").port();
        assert_eq!(level(&format!("127.0.0.1:{port}")), Level::Warning);
        drop(held);
        assert_eq!(level(&format!("127.0.0.1:{port}")), Level::Ok, "free again");
    }
}
