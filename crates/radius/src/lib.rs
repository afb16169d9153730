//! RADIUS front-end for mfad: UDP transport, client table, duplicate cache, and the mapping of engine outcomes to replies.
//!
//! A thin transport in front of [`mfad_core::engine::Engine`]: it decides
//! only whether a datagram is a trustworthy request (known client, valid
//! authenticators, well formed), never whether a user may log in.
//!
//! - Message-Authenticator is verified on every request and required by
//!   default; every Access-Accept, -Reject and -Challenge carries it first
//!   (RFC 3579 §3.2, BlastRADIUS, CVE-2024-3596).
//! - Retransmissions are answered from a cache, never decided twice
//!   (RFC 5080 §2.2.2).
//! - Status-Server (RFC 5997) is answered; Accounting-Request (RFC 2866) is
//!   acknowledged and otherwise ignored.
//! - Clients come from the store and are reloaded every few seconds.
//! - Clients with `first_factor = radius` are forwarded to target servers
//!   ([`Targets`]) before mfad asks for the second factor.

mod clients;
mod dedup;
mod handler;
pub mod prompts;
mod relay;
mod server;
mod stats;
mod upstream;

pub use clients::{ClientTable, LiveClients, RadiusClient, MIN_SECRET_LEN};
pub use dedup::{DedupCache, RequestKey, Seen};
pub use handler::CHANNEL;
pub use server::{RadiusOptions, RadiusServer};
pub use stats::{Stats, StatsSnapshot};
pub use upstream::{TargetConfig, Targets};
