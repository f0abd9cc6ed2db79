//! The real observers and actuators, one file per external system.

pub mod netlink;
pub mod postgres;
