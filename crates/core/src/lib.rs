//! mfad-core: the verification engine and every rule of multi-factor authentication.
//!
//! The core talks to the world only through traits ([`store::Store`], [`clock::Clock`],
//! [`clock::Random`]) and returns plain [`engine::Outcome`]s that front-ends turn into
//! protocol replies.

pub mod audit;
pub mod clock;
pub mod engine;
pub mod import;
pub mod model;
pub mod otp;
pub mod otpauth;
pub mod pin;
pub mod policy;
pub mod snapshot;
pub mod store;
pub mod username;
