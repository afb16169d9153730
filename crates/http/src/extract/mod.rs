//! Extractors: what a handler learns about a request beyond its body.

pub mod client_addr;

pub use client_addr::{ClientAddr, Peer};
