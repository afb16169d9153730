//! mfad-core: the verification engine and every rule of multi-factor authentication.
//!
//! The core talks to the world only through traits ([`store::Store`], [`directory::Directory`],
//! [`upstream::Upstream`], [`clock::Clock`],
//! [`clock::Random`]) and returns plain [`engine::Outcome`]s that front-ends turn into
//! protocol replies. Operator actions (users, tokens, clients, PINs, bypass and block,
//! welcome mails) are [`service`]s that every front-end calls alike.

pub mod audit;
pub mod clock;
pub mod code_mac;
pub mod delivery;
pub mod directory;
pub mod engine;
pub mod first_factor;
pub mod import;
pub mod model;
pub mod otp;
pub mod otpauth;
pub mod outbox;
pub mod phone;
pub mod pin;
pub mod policy;
pub mod service;
pub mod settings;
pub mod snapshot;
pub mod store;
pub mod upstream;
pub mod username;
