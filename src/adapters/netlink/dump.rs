//! Every link and IPv4 address in the namespace, as `check-config` and the start-up
//! check read them (with the kernel's secondary flag).

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::LinkAttribute;

use super::{KernelError, Netlink};

/// One interface, as `check-config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// Lower-case `aa:bb:..`, when the link has a 6-byte hardware address.
    pub mac: Option<String>,
    pub up: bool,
}

/// One IPv4 address of any interface. `secondary`: the kernel's IFA_F_SECONDARY (another
/// address of the same subnet came first on that link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfo {
    pub index: u32,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub secondary: bool,
}

impl Netlink {
    /// Every interface in this network namespace.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, KernelError> {
        use rtnetlink::packet_route::link::LinkFlags;
        let mut stream = self.handle.link().get().execute();
        let mut out = Vec::new();
        loop {
            match stream.try_next().await {
                Ok(Some(link)) => out.push(LinkInfo {
                    index: link.header.index,
                    name: link
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            LinkAttribute::IfName(n) => Some(n.clone()),
                            _ => None,
                        })
                        .unwrap_or_default(),
                    mac: link.attributes.iter().find_map(|a| match a {
                        LinkAttribute::Address(b) if b.len() == 6 => Some(
                            b.iter()
                                .map(|x| format!("{x:02x}"))
                                .collect::<Vec<_>>()
                                .join(":"),
                        ),
                        _ => None,
                    }),
                    up: link.header.flags.contains(LinkFlags::Up),
                }),
                Ok(None) => return Ok(out),
                Err(e) => return Err(self.err("get links", String::new(), e)),
            }
        }
    }

    /// Every IPv4 address of every interface in this network namespace.
    pub async fn all_addresses(&self) -> Result<Vec<AddrInfo>, KernelError> {
        let mut stream = self.handle.address().get().execute();
        let mut out = Vec::new();
        loop {
            match stream.try_next().await {
                Ok(Some(msg)) => out.extend(addr_info(&msg)),
                Ok(None) => return Ok(out),
                Err(e) => return Err(self.err("get addresses", String::new(), e)),
            }
        }
    }
}

pub(super) fn addr_info(msg: &AddressMessage) -> Option<AddrInfo> {
    use rtnetlink::packet_route::address::AddressHeaderFlags;
    msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(addr)) => Some(AddrInfo {
            index: msg.header.index,
            addr: *addr,
            prefix_len: msg.header.prefix_len,
            secondary: msg.header.flags.contains(AddressHeaderFlags::Secondary),
        }),
        _ => None,
    })
}
