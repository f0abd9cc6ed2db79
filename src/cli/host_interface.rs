//! `check-config`'s look at what `run` refuses at start: the interface, the VIP among
//! this host's addresses (adapters/own_address.rs, the same rules `run` and the
//! actuator apply), and the socket path (`health::server::path_problem`, the same
//! check `run` makes before binding).

use std::path::Path;

use crate::adapters::netlink::{AddrInfo, LinkInfo, Netlink};
use crate::adapters::own_address::{self, Problem};
use crate::cli::host_check::{Finding, ServiceUser, fail, ok, warning};
use crate::config::Settings;

/// The interface, its prefix and the VIP among the host's addresses.
pub async fn interface_checks(s: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let found = async {
        let nl = Netlink::connect(&s.interface, s.vip)?;
        Ok::<_, crate::adapters::netlink::KernelError>((
            nl.links().await?,
            nl.all_addresses().await?,
        ))
    }
    .await;
    let (links, addrs) = match found {
        Ok(v) => v,
        Err(e) => {
            out.push(fail(format!("cannot list the interfaces: {e}")));
            return out;
        }
    };
    let name_of = |index: u32| {
        links
            .iter()
            .find(|l| l.index == index)
            .map_or_else(|| format!("interface #{index}"), |l| l.name.clone())
    };
    let Some(link) = links.iter().find(|l| l.name == s.interface) else {
        out.push(fail(format!(
            "interface {:?} does not exist on this host (there are: {})",
            s.interface,
            links
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
        // The VIP on any interface is still worth naming.
        let elsewhere = own_address::startup_problems(s.vip, &s.interface, 0, &addrs, name_of);
        out.extend(elsewhere.into_iter().filter_map(|p| match p {
            Problem::Config(line) if line.contains("is already an address of") => Some(fail(line)),
            _ => None,
        }));
        return out;
    };
    let own: Vec<&AddrInfo> = addrs.iter().filter(|a| a.index == link.index).collect();
    out.push(describe_link(link, &own));
    if !link.up {
        out.push(warning(format!(
            "interface {} is down: the VIP would not answer on it",
            link.name
        )));
    }
    let own_address = own_address::own_address(s.vip, link.index, &addrs);
    match s.prefix_len {
        Some(p) => out.push(ok(format!("prefix_len /{p} (configured)"))),
        None => match own_address.or_else(|| own.iter().copied().find(|a| a.addr != s.vip)) {
            Some(a) => out.push(ok(format!(
                "prefix_len /{} from {}'s own address {}/{}",
                a.prefix_len, link.name, a.addr, a.prefix_len
            ))),
            None => out.push(fail(format!(
                "interface {} has no IPv4 address other than the VIP to take the prefix length from: \
                 set prefix_len or fix the interface",
                link.name
            ))),
        },
    }
    let problems = own_address::startup_problems(s.vip, &s.interface, link.index, &addrs, name_of);
    if let Some(a) = own_address {
        out.push(ok(format!(
            "the VIP {} lies in the network of {}'s own address {}/{}",
            s.vip, link.name, a.addr, a.prefix_len
        )));
    }
    if let Some(a) = own.iter().find(|a| a.addr == s.vip)
        && problems.is_empty()
    {
        out.push(ok(format!(
            "the VIP is on {} now ({}/{})",
            link.name, a.addr, a.prefix_len
        )));
    }
    for p in problems {
        match p {
            Problem::Config(line) => out.push(fail(line)),
            Problem::NoAddressYet(line) => {
                out.push(fail(format!("{line} (run exits 1 until it has one)")))
            }
        }
    }
    out
}

fn describe_link(link: &LinkInfo, own: &[&AddrInfo]) -> Finding {
    let addrs = if own.is_empty() {
        "no IPv4 address".to_owned()
    } else {
        own.iter()
            .map(|a| format!("{}/{}", a.addr, a.prefix_len))
            .collect::<Vec<_>>()
            .join(", ")
    };
    ok(format!(
        "interface {} exists: mac {}, {}, {addrs}",
        link.name,
        link.mac.as_deref().unwrap_or("none"),
        if link.up { "up" } else { "down" }
    ))
}

/// The socket path as `run` judges it before binding (a FAIL: `run` exits 78).
pub fn socket_check(path: &Path) -> Finding {
    match crate::health::server::path_problem(path) {
        Some(problem) => fail(format!("{problem}; run would exit 78")),
        None if path.exists() => ok(format!(
            "socket {} is a socket (a running vip-arbiter's, or a stale one run replaces)",
            path.display()
        )),
        None => ok(format!("socket {} is free (made at start)", path.display())),
    }
}

/// `socket_group`: the service user must be a member, or `run`'s chgrp of the socket
/// is refused (the unit keeps no CAP_CHOWN) and it exits 78.
pub fn socket_group_check(s: &Settings, user: &ServiceUser) -> Option<Finding> {
    let g = s.socket_group.as_ref()?;
    Some(if user.gids.contains(&g.id) {
        ok(format!(
            "socket_group {} (gid {}): {} is a member",
            g.name, g.id, user.name
        ))
    } else {
        fail(format!(
            "socket_group {} (gid {}): {} is not a member, so run could not give the socket \
             that group; run would exit 78",
            g.name, g.id, user.name
        ))
    })
}
