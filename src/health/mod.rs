//! What the daemon tells the outside: the health snapshot (`state`), the counters
//! (`metrics`), the unix-socket HTTP server (`server`) and its client (`client`),
//! the small HTTP/1.1 parser (`http`), and who may use the socket (`socket_access`).

pub mod client;
pub mod http;
pub mod metrics;
pub mod server;
pub mod socket_access;
pub mod state;
