//! mfad's end-to-end tests, one test binary: the real `mfad` binary against real
//! peers (radclient, pam_radius_auth, FreeRADIUS, slapd, PostgreSQL, an SMTP server,
//! the SMS and voice providers' APIs), with the fixtures of `mfad-testkit`.

mod cli;
mod directory;
mod email;
mod engine;
mod http;
mod multinode;
mod proxy;
mod radius;
mod sms;
mod voice;
