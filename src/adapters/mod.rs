//! The real observers and actuators, one file per external system.

pub mod ec2;
pub mod fence;
pub mod netlink;
pub mod own_address;
pub mod peer;
pub mod postgres;
pub mod state_file;
