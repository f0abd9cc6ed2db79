//! The kernel side: is the VIP on the interface, add it, remove it. rtnetlink only;
//! nothing here shells out to `ip`. Every call looks the link up by name, so a
//! re-created interface is picked up. Before every add and delete the link's addresses
//! are read and own_address.rs's rules applied: the interface's own address is never
//! removed, whatever the config says.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{AddressMessageBuilder, Handle};

use crate::adapters::own_address;
use crate::core::observation::KernelView;

mod dump;
mod errors;
use crate::pass::act::{Applied, KernelActuator, StepError};
use crate::pass::observe::KernelSource;
use dump::addr_info;
pub use dump::{AddrInfo, LinkInfo};
pub use errors::KernelError;

// The errnos netlink answers with, as the kernel numbers them (nix has them all).
const EEXIST: i32 = Errno::EEXIST as i32;
const EADDRNOTAVAIL: i32 = Errno::EADDRNOTAVAIL as i32;
const ENODEV: i32 = Errno::ENODEV as i32;

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
