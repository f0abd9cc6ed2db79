//! What the kernel side can fail with, and how a failed step reports it (the errno
//! kept; EPERM and a refusal by own_address.rs need an operator).

use std::io;

use nix::errno::Errno;

use crate::core::observation::FailureKind;
use crate::pass::act::StepError;

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
