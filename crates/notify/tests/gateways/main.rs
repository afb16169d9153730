//! The delivery tests, one test binary: SMS gateways against the local provider
//! double, and SMTP against a real mail server.

mod sms;
mod smtp;
