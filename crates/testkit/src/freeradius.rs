//! Debian's FreeRADIUS 3.2 with a minimal generated config: PAP and MS-CHAP users, one listener.
//!
//! The config (see `radiusd_conf` below) loads only `files`, `pap`, `mschap` and one `always` instance:
//! no EAP, no SQL, no detail files. It logs at the normal level to stdout (`-f -l stdout`,
//! never `-X`) and does not log passwords (`auth_badpass`/`auth_goodpass = no`), so it is fast
//! enough to be the reference server of benchmarks. The client `127.0.0.0/8` has
//! `require_message_authenticator = no`: Debian bookworm's FreeRADIUS 3.2.1 takes only a
//! boolean there (it rejects `auto`), and `no` accepts requests with and without
//! Message-Authenticator, verifying it when present. Status-Server is enabled and answered
//! with Access-Accept. Every user can also log in with MS-CHAPv2: FreeRADIUS computes it
//! from the `Cleartext-Password` of the users file and returns MS-CHAP2-Success and the
//! MPPE keys (RFC 2548 §2.4.2) in its Access-Accept.
//!
//! A challenge user ([`FreeRadiusBuilder::challenge_user`]) gets Access-Challenge with a
//! Reply-Message prompt and a State after the right password, and Access-Accept for the
//! right code sent back with that State: the shape of a password-then-OTP login.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::Process;
use crate::{free_udp_port, require_tool, Radclient};

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The State a challenge user is sent; any constant works, FreeRADIUS only compares it.
const CHALLENGE_STATE: &str = "0x6d6661642d74657374";

/// A running FreeRADIUS; killed on drop.
pub struct FreeRadius {
    process: Process,
    addr: SocketAddr,
    _dir: TempDir,
}

/// Users and secret of a [`FreeRadius`] to start.
#[derive(Clone, Debug, Default)]
pub struct FreeRadiusBuilder {
    secret: String,
    users: Vec<User>,
}

#[derive(Clone, Debug)]
struct User {
    name: String,
    password: String,
    challenge: Option<(String, String)>,
}

impl FreeRadius {
    /// Starts FreeRADIUS with PAP `users` (name, password) and waits until it answers.
    pub fn start(secret: &str, users: &[(&str, &str)]) -> FreeRadius {
        users
            .iter()
            .fold(FreeRadius::builder(secret), |b, (name, password)| {
                b.user(name, password)
            })
            .start()
    }

    pub fn builder(secret: &str) -> FreeRadiusBuilder {
        FreeRadiusBuilder {
            secret: secret.to_owned(),
            users: Vec::new(),
        }
    }

    /// The authentication address, 127.0.0.1 and a port that was free.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// What FreeRADIUS logged so far.
    pub fn logs(&self) -> String {
        self.process.output().text()
    }
}

impl FreeRadiusBuilder {
    /// A user authenticated by PAP with `password`.
    pub fn user(mut self, name: &str, password: &str) -> FreeRadiusBuilder {
        self.users.push(User {
            name: name.to_owned(),
            password: password.to_owned(),
            challenge: None,
        });
        self
    }

    /// A user who, after the right `password`, is challenged with `prompt` and accepted
    /// when the answer (sent with the State of the challenge) is `code`.
    pub fn challenge_user(
        mut self,
        name: &str,
        password: &str,
        prompt: &str,
        code: &str,
    ) -> FreeRadiusBuilder {
        self.users.push(User {
            name: name.to_owned(),
            password: password.to_owned(),
            challenge: Some((prompt.to_owned(), code.to_owned())),
        });
        self
    }

    /// Writes the config, starts FreeRADIUS on a free port and waits until it answers a
    /// Status-Server. Retries on a new port if the one chosen was taken meanwhile.
    pub fn start(self) -> FreeRadius {
        let freeradius = require_tool("freeradius");
        require_tool("radclient");
        let dir = tempfile::Builder::new()
            .prefix("freeradius-")
            .tempdir()
            .expect("create a temp dir for FreeRADIUS");
        write(dir.path(), "users", &users_file(&self.users));
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()));
            write(
                dir.path(),
                "radiusd.conf",
                &radiusd_conf(dir.path(), addr, &self.secret),
            );
            let mut command = Command::new(&freeradius);
            command.args(["-f", "-l", "stdout", "-d"]).arg(dir.path());
            let mut process = Process::spawn("freeradius", command);
            if self.wait_ready(&mut process, addr) {
                return FreeRadius {
                    process,
                    addr,
                    _dir: dir,
                };
            }
            let status = process.kill();
            let _ = writeln!(
                failures,
                "attempt {attempt} on {addr} ({status}):\n{}",
                process.output().text()
            );
        }
        panic!("FreeRADIUS did not start in {START_ATTEMPTS} attempts\n{failures}");
    }

    /// Polls with Status-Server until a reply, the process exits, or the deadline passes.
    fn wait_ready(&self, process: &mut Process, addr: SocketAddr) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        // Sockets are bound while the config loads, before this line.
        let ready = process.output().wait_for(deadline, |lines| {
            lines
                .iter()
                .any(|l| l.contains("Ready to process requests"))
                .then_some(())
        });
        if ready.is_none() {
            return false;
        }
        let probe = Radclient::new(addr, &self.secret).with_timeout(PROBE_TIMEOUT);
        while Instant::now() < deadline && process.try_status().is_none() {
            if probe.send("status", &[]).code.is_some() {
                return true;
            }
        }
        false
    }
}

fn write(dir: &Path, name: &str, contents: &str) {
    let path = dir.join(name);
    std::fs::write(&path, contents)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// The whole server config in one file: no `mods-enabled`, no `sites-enabled`.
fn radiusd_conf(dir: &Path, addr: SocketAddr, secret: &str) -> String {
    let dir = dir.display();
    let secret = quoted(secret);
    let ip = addr.ip();
    let port = addr.port();
    format!(
        r#"# Generated by mfad-testkit: PAP users only.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
libdir = /usr/lib/freeradius
dictdir = /usr/share/freeradius
name = freeradius
confdir = {dir}
raddbdir = {dir}
modconfdir = {dir}
logdir = {dir}
radacctdir = {dir}
run_dir = {dir}
db_dir = {dir}
pidfile = {dir}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 262144
hostname_lookups = no

log {{
	destination = stdout
	colourise = no
	auth = no
	auth_badpass = no
	auth_goodpass = no
}}

security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}}

thread pool {{
	start_servers = 8
	max_servers = 32
	min_spare_servers = 4
	max_spare_servers = 16
	max_queue_size = 65536
	max_requests_per_server = 0
	auto_limit_acct = no
}}

client loopback {{
	ipaddr = 127.0.0.0/8
	secret = {secret}
	require_message_authenticator = no
	nas_type = other
}}

modules {{
	files {{
		filename = {dir}/users
	}}
	pap {{
		normalise = yes
	}}
	mschap {{
		use_mppe = yes
		require_encryption = no
		require_strong = no
	}}
	always handled {{
		rcode = handled
	}}
}}

server default {{
	listen {{
		type = auth
		ipaddr = {ip}
		port = {port}
	}}
	authorize {{
		files
		mschap
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
			# The users file marks the password step of a challenge user.
			if (ok && &control:Tmp-String-0 == "challenge") {{
				update control {{
					&Response-Packet-Type := Access-Challenge
				}}
				handled
			}}
		}}
		Auth-Type MS-CHAP {{
			mschap
		}}
	}}
	post-auth {{
	}}
}}
"#
    )
}

/// The `users` file: one entry per user; a challenge user has a State-matching entry for
/// the code first, then the password entry that challenges.
fn users_file(users: &[User]) -> String {
    let mut out = String::new();
    for user in users {
        let name = quoted(&user.name);
        let password = quoted(&user.password);
        match &user.challenge {
            None => {
                let _ = writeln!(out, "{name}\tCleartext-Password := {password}\n");
            }
            Some((prompt, code)) => {
                let _ = writeln!(
                    out,
                    "{name}\tState == {CHALLENGE_STATE}, Cleartext-Password := {}\n",
                    quoted(code)
                );
                let _ = writeln!(
                    out,
                    "{name}\tCleartext-Password := {password}, Tmp-String-0 := \"challenge\"\n\
                     \tReply-Message = {},\n\
                     \tState = {CHALLENGE_STATE}\n",
                    quoted(prompt)
                );
            }
        }
    }
    out
}

/// A double-quoted FreeRADIUS string.
fn quoted(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}
