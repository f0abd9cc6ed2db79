//! The kernel side: is the VIP on the interface, add it, remove it. rtnetlink only;
//! nothing here shells out to `ip`. Every call looks the link up by name, so a
//! re-created interface is picked up. Before every add and delete the link's addresses
//! are read and own_address.rs's rules applied: the interface's own address is never
//! removed, whatever the config says.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{AddressMessageBuilder, Handle};

use crate::adapters::own_address;
use crate::core::observation::{FailureKind, KernelView};
use crate::pass::act::{Applied, KernelActuator, StepError};
use crate::pass::observe::KernelSource;

// The errnos netlink answers with, as the kernel numbers them (nix has them all).
const EEXIST: i32 = Errno::EEXIST as i32;
const EADDRNOTAVAIL: i32 = Errno::EADDRNOTAVAIL as i32;
const ENODEV: i32 = Errno::ENODEV as i32;
const EPERM: i32 = Errno::EPERM as i32;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("interface {ifname:?} does not exist")]
    NoSuchInterface { ifname: String },
    #[error("invalid prefix length /{prefix_len} for IPv4")]
    InvalidPrefix { prefix_len: u8 },
    #[error(
        "interface {ifname:?} has no IPv4 address other than the VIP to take the prefix length from"
    )]
    NoPrimaryAddress { ifname: String },
    #[error("interface {ifname:?} has no hardware address")]
    NoMac { ifname: String },
    #[error("{op} {addr} on {ifname}: {source} (errno {errno})")]
    Netlink {
        op: &'static str,
        ifname: String,
        addr: String,
        errno: i32,
        source: io::Error,
    },
    #[error("netlink {op} on {ifname}: {message}")]
    Protocol {
        op: &'static str,
        ifname: String,
        message: String,
    },
    #[error("cannot open a netlink socket: {0}")]
    Socket(io::Error),
    /// own_address.rs refused the change; nothing was sent to the kernel.
    #[error("refused on {ifname}: {reason}")]
    Refused { ifname: String, reason: String },
}

impl KernelError {
    /// The errno, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Netlink { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// One interface and one VIP, over one netlink socket.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    ifname: String,
    vip: Ipv4Addr,
}

impl Netlink {
    /// Opens the socket and spawns its connection task; needs a tokio runtime.
    pub fn connect(ifname: &str, vip: Ipv4Addr) -> Result<Self, KernelError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(KernelError::Socket)?;
        tokio::spawn(conn);
        Ok(Netlink {
            handle,
            ifname: ifname.to_owned(),
            vip,
        })
    }

    fn err(&self, op: &'static str, addr: String, e: rtnetlink::Error) -> KernelError {
        match e {
            rtnetlink::Error::NetlinkError(msg) => {
                let errno = -msg.raw_code();
                if errno == ENODEV {
                    return KernelError::NoSuchInterface {
                        ifname: self.ifname.clone(),
                    };
                }
                KernelError::Netlink {
                    op,
                    ifname: self.ifname.clone(),
                    addr,
                    errno,
                    source: io::Error::from_raw_os_error(errno),
                }
            }
            other => KernelError::Protocol {
                op,
                ifname: self.ifname.clone(),
                message: other.to_string(),
            },
        }
    }

    async fn link(&self) -> Result<rtnetlink::packet_route::link::LinkMessage, KernelError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(self.ifname.clone())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link),
            Ok(None) => Err(KernelError::NoSuchInterface {
                ifname: self.ifname.clone(),
            }),
            Err(e) => Err(self.err("get link", self.ifname.clone(), e)),
        }
    }

    /// The interface's MAC, lower-case `aa:bb:..`, as IMDS lists it.
    pub async fn mac(&self) -> Result<String, KernelError> {
        let link = self.link().await?;
        link.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(bytes) if bytes.len() == 6 => Some(
                    bytes
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                ),
                _ => None,
            })
            .ok_or_else(|| KernelError::NoMac {
                ifname: self.ifname.clone(),
            })
    }

    /// IPv4 addresses on the link, with the kernel's secondary flag.
    async fn addresses(&self, index: u32) -> Result<Vec<AddrInfo>, KernelError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        loop {
            match stream.try_next().await {
                Ok(Some(msg)) => out.extend(addr_info(&msg)),
                Ok(None) => return Ok(out),
                Err(e) => return Err(self.err("get addresses", self.ifname.clone(), e)),
            }
        }
    }

    /// The prefix of the interface's own (non-VIP) address, the one whose network
    /// holds the VIP when there is one: the default `prefix_len`.
    pub async fn primary_prefix(&self) -> Result<u8, KernelError> {
        let index = self.link().await?.header.index;
        let addrs = self.addresses(index).await?;
        own_address::own_address(self.vip, index, &addrs)
            .or_else(|| addrs.iter().find(|a| a.addr != self.vip))
            .map(|a| a.prefix_len)
            .ok_or_else(|| KernelError::NoPrimaryAddress {
                ifname: self.ifname.clone(),
            })
    }

    fn vip_prefix(&self, addrs: &[AddrInfo]) -> Option<u8> {
        addrs
            .iter()
            .find(|a| a.addr == self.vip)
            .map(|a| a.prefix_len)
    }

    /// The VIP among every interface's addresses, as `run` judges it at start.
    pub async fn startup_problems(&self) -> Result<Vec<own_address::Problem>, KernelError> {
        let index = self.link().await?.header.index;
        let links = self.links().await?;
        let addrs = self.all_addresses().await?;
        let name_of = |i: u32| {
            links
                .iter()
                .find(|l| l.index == i)
                .map_or_else(|| format!("interface #{i}"), |l| l.name.clone())
        };
        Ok(own_address::startup_problems(
            self.vip,
            &self.ifname,
            index,
            &addrs,
            name_of,
        ))
    }

    /// RTM_DELADDR of the VIP, unless own_address.rs refuses it for `addrs` (the
    /// link's addresses, just read).
    async fn delete(
        &self,
        index: u32,
        prefix_len: u8,
        addrs: &[AddrInfo],
    ) -> Result<Applied, KernelError> {
        if let Some(reason) = own_address::removal_refused(self.vip, &self.ifname, index, addrs) {
            return Err(KernelError::Refused {
                ifname: self.ifname.clone(),
                reason,
            });
        }
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(self.vip, prefix_len)
            .build();
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(Applied::Changed),
            Err(e) => match self.err("delete", format!("{}/{prefix_len}", self.vip), e) {
                KernelError::Netlink { errno, .. } if errno == EADDRNOTAVAIL => {
                    Ok(Applied::AlreadyDone)
                }
                other => Err(other),
            },
        }
    }
}

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

fn addr_info(msg: &AddressMessage) -> Option<AddrInfo> {
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

impl KernelSource for Netlink {
    async fn observe(&self) -> KernelView {
        let result = async {
            let index = self.link().await?.header.index;
            Ok::<_, KernelError>(self.vip_prefix(&self.addresses(index).await?))
        }
        .await;
        match result {
            Ok(Some(prefix_len)) => KernelView::Present { prefix_len },
            Ok(None) => KernelView::Absent,
            Err(e) => KernelView::Unknown(e.to_string()),
        }
    }
}

impl From<KernelError> for StepError {
    fn from(e: KernelError) -> Self {
        // The errno, when there is one, is in the message already.
        StepError {
            code: e.errno().map(|n| format!("errno {n}")),
            message: e.to_string(),
            kind: if e.errno() == Some(EPERM) || matches!(e, KernelError::Refused { .. }) {
                FailureKind::NeedsOperator
            } else {
                FailureKind::Transient
            },
            detail: e.to_string(),
            // The kernel answers every request; an error means it did nothing.
            refused: true,
        }
    }
}

impl KernelActuator for Netlink {
    async fn add(&self, prefix_len: u8) -> Result<Applied, StepError> {
        Ok(self.add_vip(prefix_len).await?)
    }

    async fn remove(&self) -> Result<Applied, StepError> {
        Ok(self.remove_vip().await?)
    }
}

impl Netlink {
    /// Idempotent: EEXIST means "already there". An address with another prefix is
    /// replaced, since the kernel would otherwise keep both.
    pub async fn add_vip(&self, prefix_len: u8) -> Result<Applied, KernelError> {
        if prefix_len == 0 || prefix_len > 32 {
            return Err(KernelError::InvalidPrefix { prefix_len });
        }
        let index = self.link().await?.header.index;
        let addrs = self.addresses(index).await?;
        let present = self.vip_prefix(&addrs);
        if present == Some(prefix_len) {
            return Ok(Applied::AlreadyDone);
        }
        if let Some(reason) = own_address::add_refused(self.vip, &self.ifname, index, &addrs) {
            return Err(KernelError::Refused {
                ifname: self.ifname.clone(),
                reason,
            });
        }
        if let Some(p) = present {
            self.delete(index, p, &addrs).await?;
        }
        let addr = format!("{}/{prefix_len}", self.vip);
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(self.vip), prefix_len)
            .execute()
            .await
        {
            Ok(()) => Ok(Applied::Changed),
            Err(e) => match self.err("add", addr, e) {
                KernelError::Netlink { errno, .. } if errno == EEXIST => Ok(Applied::AlreadyDone),
                other => Err(other),
            },
        }
    }

    /// Idempotent: absent or EADDRNOTAVAIL means "already gone". Removes the VIP
    /// whatever prefix it was added with.
    pub async fn remove_vip(&self) -> Result<Applied, KernelError> {
        let index = self.link().await?.header.index;
        let addrs = self.addresses(index).await?;
        match self.vip_prefix(&addrs) {
            Some(p) => self.delete(index, p, &addrs).await,
            None => Ok(Applied::AlreadyDone),
        }
    }
}
