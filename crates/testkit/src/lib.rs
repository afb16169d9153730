//! mfad-testkit: starts the `mfad` binary and the real peers it talks to, for end-to-end tests.
//!
//! Every part is a real program, never a mock (see "Testing" in the design):
//!
//! - [`Mfad`] writes a config into a temp dir, runs CLI commands and starts `mfad serve`,
//!   reading the RADIUS port it bound back from its log ([`Running`]).
//! - [`Radclient`] sends RADIUS packets with FreeRADIUS' `radclient` and parses the reply.
//! - [`FreeRadius`] runs a minimal FreeRADIUS 3.2 with PAP users, as an upstream target and
//!   as the reference server for benchmarks.
//! - [`pam_login`] logs in through the real `pam_radius_auth` module with `pamtester`.
//! - [`oathtool_totp`] / [`oathtool_hotp`] are the independent OTP oracle.
//! - [`PgDatabase`] is a fresh database on the machine's PostgreSQL; [`PgCluster`] is a
//!   private server on a free port that a test can stop and start.
//! - [`UdpTap`] relays UDP and records the datagrams a client sent, to inspect them on the wire.
//!
//! Rules every part keeps: servers bind port 0 (or a port just found free) and report the
//! real address; waiting is polling against a deadline, never a fixed sleep; every started
//! process is killed when its handle is dropped; a missing tool fails the test with a
//! message saying how to install it ([`require_tool`]), it never skips.

// A test harness reports broken preconditions by panicking, like the tests that use it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod freeradius;
mod mfad;
mod oath;
mod pam;
mod postgres;
mod process;
mod radclient;
mod tap;

use std::path::{Path, PathBuf};

pub use freeradius::{FreeRadius, FreeRadiusBuilder};
pub use mfad::{Mfad, Running};
pub use oath::{oathtool_hotp, oathtool_totp};
pub use pam::{pam_login, PamResult};
pub use postgres::{PgCluster, PgDatabase};
pub use radclient::{RadReply, Radclient};
pub use tap::{attribute_types, UdpTap};

/// Directories searched after `PATH`: `freeradius` lives in `/usr/sbin`, which is not on
/// every user's `PATH`.
const EXTRA_BIN_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Finds the executable `name` on `PATH` (or in the sbin directories), or fails the test
/// with a message that says how to install it. Tests never skip because a tool is missing.
pub fn require_tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("{}", missing(name)))
}

/// Fails the test unless `path` exists; `what` names it in the message.
pub(crate) fn require_file(what: &str, path: Option<PathBuf>) -> PathBuf {
    path.unwrap_or_else(|| panic!("{}", missing(what)))
}

fn missing(name: &str) -> String {
    format!("{name} is missing; run scripts/test.sh, which installs the test dependencies")
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A UDP port on 127.0.0.1 that was free a moment ago: bind port 0, read it, release it.
/// For programs that cannot bind port 0 and report back (FreeRADIUS); callers retry on a
/// start failure, since another process may take the port in between.
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    socket
        .local_addr()
        .expect("local_addr of a bound socket")
        .port()
}
