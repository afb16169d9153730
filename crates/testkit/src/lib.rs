//! mfad-testkit: starts the `mfad` binary and the real peers it talks to, for end-to-end tests.
//!
//! Every part is a real program, never a mock (see "Testing" in the design):
//!
//! - [`Mfad`] writes a config into a temp dir, runs CLI commands and starts `mfad serve`,
//!   reading the RADIUS port it bound back from its log ([`Running`]).
//! - [`Radclient`] sends RADIUS packets with FreeRADIUS' `radclient` and parses the reply.
//! - [`FreeRadius`] runs a minimal FreeRADIUS 3.2 with PAP users, as an upstream target and
//!   as the reference server for benchmarks.
//! - [`nas`] is a minimal RADIUS client written from the RFCs, sharing no code with
//!   mfad's codec, for tests that need byte-level control radclient does not give.
//! - [`MsChapV2`] computes the MS-CHAPv2 attributes a VPN sends (RFC 2759), for radclient.
//! - [`pam_login`] logs in through the real `pam_radius_auth` module with `pamtester`.
//! - [`oathtool_totp`] / [`oathtool_hotp`] are the independent OTP oracle.
//! - [`Slapd`] runs OpenLDAP's `slapd` with StartTLS on a free port, seeded from LDIF.
//! - [`SmtpServer`] is Debian's aiosmtpd (plain, STARTTLS or TLS, with AUTH when asked),
//!   with certificates from a [`TestCa`].
//! - [`FakeTwilio`] is the one simulated peer: a local HTTP server shaped like Twilio's
//!   Messages API, which hands every SMS to the test.
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
mod guess;
mod mfad;
mod mschap;
pub mod nas;
mod oath;
mod pam;
mod postgres;
mod process;
mod radclient;
mod slapd;
mod smtp;
mod tap;
mod twilio;

use std::path::{Path, PathBuf};

pub use freeradius::{FreeRadius, FreeRadiusBuilder};
pub use guess::{
    accepts_until_killed, assert_every_accept_recorded, assert_lockout_held, audit_reasons,
    hotp_burst,
};
pub use mfad::{Mfad, Running, Starting};
pub use mschap::MsChapV2;
pub use oath::{oathtool_hotp, oathtool_totp};
pub use pam::{pam_login, PamResult};
pub use postgres::{PgCluster, PgDatabase};
pub use radclient::{RadReply, Radclient};
pub use slapd::{base_ldif, ou_ldif, person_category_dn, person_ldif, Slapd, ADMIN_DN, BASE_DN};
pub use smtp::{ReceivedMail, SmtpMode, SmtpServer, TestCa};
pub use tap::{attribute_types, UdpTap};
pub use twilio::{Call, CallScript, FakeTwilio, GenericRequest, Sms};

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

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server (slapd, aiosmtpd)
/// that is started later on it; callers retry on a start failure.
pub fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// A TCP port on 127.0.0.1 held from now on: a socket bound to it that does not listen,
/// so connections to it are refused (a server that is down) and no other process can
/// take the port. [`SmtpServer::start_on`] serves on this very socket.
pub struct ReservedTcpPort {
    socket: socket2::Socket,
    port: u16,
}

impl ReservedTcpPort {
    pub fn new() -> ReservedTcpPort {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("create a TCP socket");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&addr.into()).expect("bind 127.0.0.1:0");
        let port = socket
            .local_addr()
            .expect("local_addr of a bound socket")
            .as_socket()
            .expect("an IPv4 address")
            .port();
        ReservedTcpPort { socket, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound socket, for a child process to listen on.
    pub(crate) fn into_stdio(self) -> std::process::Stdio {
        std::process::Stdio::from(std::os::fd::OwnedFd::from(self.socket))
    }
}

impl Default for ReservedTcpPort {
    fn default() -> Self {
        Self::new()
    }
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
