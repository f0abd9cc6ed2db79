//! What the daemon tells the outside: the health snapshot (`state`), the counters
//! (`metrics`), the unix-socket HTTP server (`server`) and its client (`client`),
//! the small HTTP/1.1 parser (`http`), and who may use the socket (`socket_access`);
//! the optional TCP endpoint (`tcp`), its role answers (`roles`) and its allow list
//! (`tcp_access`); what both listeners share (`conn`).

pub mod client;
pub mod conn;
pub mod http;
pub mod metrics;
pub mod roles;
pub mod server;
pub mod socket_access;
pub mod state;
pub mod tcp;
pub mod tcp_access;
