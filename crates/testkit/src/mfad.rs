//! The `mfad` binary under test: a config in a temp dir, CLI commands, and `mfad serve`.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{run_with_input, Process};

/// The log line `mfad serve` writes once its RADIUS socket is bound; the address follows.
const LISTENING: &str = "radius listening on ";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server that closed its output may take to exit.
const EXIT_GRACE: Duration = Duration::from_secs(5);
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// Log level for every command; tests read the log.
const LOG_ENV: (&str, &str) = ("MFAD_LOG", "info");

/// One mfad node: its own temp dir holding `mfad.toml`, the SQLite database and the key.
///
/// An integration test of the `mfad-server` package gets the binary from Cargo:
///
/// ```no_run
/// # use mfad_testkit::{Mfad, Radclient};
/// # use std::path::Path;
/// # let bin = Path::new("target/debug/mfad"); // env!("CARGO_BIN_EXE_mfad") in mfad-server's tests
/// let mfad = Mfad::new(bin);
/// let server = mfad.start();
/// let reply = Radclient::new(server.radius_addr(), "secret").send("status", &[]);
/// server.stop();
/// ```
pub struct Mfad {
    bin: PathBuf,
    dir: Arc<TempDir>,
    store_url: String,
    key_file: PathBuf,
    name: String,
    /// `[server] language`; empty: the default.
    language: String,
    listen: String,
    http: String,
    extra: String,
}

/// The base config's HTTP listener: every surface, plain HTTP on loopback, port 0.
const DEFAULT_HTTP: &str = "[[http.listeners]]\nlisten = \"127.0.0.1:0\"\n\
    serve = [\"portal\", \"app\", \"webhooks\", \"validate\", \"api\", \"console\", \"metrics\"]\n\
    tls = false\n";

impl Mfad {
    /// A node with a fresh temp dir and the base config: server name `test-node`, SQLite
    /// store and key file in the temp dir, RADIUS on 127.0.0.1 port 0.
    pub fn new(bin: &Path) -> Mfad {
        let dir = tempfile::Builder::new()
            .prefix("mfad-test-")
            .tempdir()
            .expect("create a temp dir for mfad");
        let store_url = format!("sqlite://{}", dir.path().join("mfad.db").display());
        let key_file = dir.path().join("mfad.key");
        let mfad = Mfad {
            bin: bin.to_owned(),
            dir: Arc::new(dir),
            store_url,
            key_file,
            name: "test-node".into(),
            language: String::new(),
            listen: "127.0.0.1:0".into(),
            http: DEFAULT_HTTP.into(),
            extra: String::new(),
        };
        mfad.write_config();
        mfad
    }

    /// Appends TOML to the config, e.g. a `[policy]` section. Sections of the base config
    /// (`[server]`, `[store]`, `[radius]`, `[http]`: see [`Mfad::with_http`]) cannot be
    /// repeated, but keys before any header
    /// land in `[radius]`, the last of them; for the store see [`Mfad::with_store_url`].
    pub fn with_config(mut self, extra: &str) -> Mfad {
        self.extra.push('\n');
        self.extra.push_str(extra);
        if !extra.ends_with('\n') {
            self.extra.push('\n');
        }
        self.write_config();
        self
    }

    /// Replaces the base config's HTTP listener (every surface, plain HTTP on
    /// 127.0.0.1 port 0) with `http`: `[http]` keys and `[[http.listeners]]`, or nothing.
    pub fn with_http(mut self, http: &str) -> Mfad {
        http.clone_into(&mut self.http);
        self.write_config();
        self
    }

    /// Uses another store, e.g. a PostgreSQL URL.
    pub fn with_store_url(mut self, url: &str) -> Mfad {
        url.clone_into(&mut self.store_url);
        self.write_config();
        self
    }

    /// This node's name in audit records (`[server] name`), `test-node` by default.
    pub fn with_name(mut self, name: &str) -> Mfad {
        name.clone_into(&mut self.name);
        self.write_config();
        self
    }

    /// The language of prompts for users without one (`[server] language`).
    pub fn with_language(mut self, language: &str) -> Mfad {
        language.clone_into(&mut self.language);
        self.write_config();
        self
    }

    /// The RADIUS listen address, `127.0.0.1:0` by default; e.g. `127.0.0.2:0` gives a
    /// second node on one machine its own address.
    pub fn with_listen(mut self, listen: &str) -> Mfad {
        listen.clone_into(&mut self.listen);
        self.write_config();
        self
    }

    /// Uses the same store and key as `other`: a second node of one cluster.
    pub fn sharing_store_with(mut self, other: &Mfad) -> Mfad {
        other.store_url.clone_into(&mut self.store_url);
        other.key_file.clone_into(&mut self.key_file);
        self.write_config();
        self
    }

    /// The temp dir holding the config, database and key; removed when the last of this
    /// `Mfad` and its [`Running`] servers is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store URL the config names.
    pub fn store_url(&self) -> &str {
        &self.store_url
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mfad.toml")
    }

    /// The config as written to [`Mfad::config_path`].
    pub fn config(&self) -> String {
        let language = if self.language.is_empty() {
            String::new()
        } else {
            format!("language = {}\n", toml_string(&self.language))
        };
        format!(
            "[server]\nname = {}\n{language}\n\
             [store]\nurl = {}\nkey_file = {}\n\n\
             [radius]\nlisten = {}\n{}\n{}",
            toml_string(&self.name),
            toml_string(&self.store_url),
            toml_string(&self.key_file.to_string_lossy()),
            toml_string(&self.listen),
            self.extra,
            self.http
        )
    }

    fn write_config(&self) {
        let path = self.config_path();
        std::fs::write(&path, self.config())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("--config")
            .arg(self.config_path())
            .env(LOG_ENV.0, LOG_ENV.1);
        command
    }

    /// Runs `mfad --config <path> args...` to completion, stdin empty. Panics if it runs
    /// longer than two minutes.
    pub fn cli<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cli_with_input(args, &[])
    }

    /// Runs `mfad --config <path> args...` with `input` on stdin (a credential for
    /// `mfad setting set KEY --secret`).
    pub fn cli_with_input<I, S>(&self, args: I, input: &[u8]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = collect_args(args);
        let mut command = self.command();
        command.args(&args);
        let (status, stdout, stderr) = run_with_input("mfad", command, input, CLI_TIMEOUT);
        let Some(status) = status else {
            panic!(
                "`mfad {}` hung for {CLI_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                shown(&args)
            );
        };
        Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
    }

    /// Registers the RADIUS client `name` as an operator does, the secret typed on
    /// standard input (`mfad client add NAME --address ADDRESS --secret-file -`); the
    /// command must succeed.
    pub fn add_client(&self, name: &str, address: &str, secret: &str) {
        self.add_client_with(name, address, secret, &[]);
    }

    /// [`Mfad::add_client`] with more `client add` options, e.g.
    /// `["--first-factor", "directory"]`.
    pub fn add_client_with(&self, name: &str, address: &str, secret: &str, options: &[&str]) {
        let mut args = vec![
            "client",
            "add",
            name,
            "--address",
            address,
            "--secret-file",
            "-",
        ];
        args.extend_from_slice(options);
        self.cli_ok_with_input(args, secret.as_bytes());
    }

    /// Stores a secret setting as an operator does, typed on standard input
    /// (`mfad setting set KEY --secret`); the command must succeed.
    pub fn set_secret(&self, key: &str, value: &str) {
        self.cli_ok_with_input(["setting", "set", key, "--secret"], value.as_bytes());
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn cli_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cli_ok_with_input(args, &[])
    }

    /// [`Mfad::cli_ok`] with `input` on stdin.
    pub fn cli_ok_with_input<I, S>(&self, args: I, input: &[u8]) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = collect_args(args);
        let output = self.cli_with_input(&args, input);
        if !output.status.success() {
            panic!(
                "`mfad {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
                shown(&args),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command that must fail and returns its stderr.
    pub fn cli_err<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = collect_args(args);
        let output = self.cli(&args);
        if output.status.success() {
            panic!(
                "`mfad {}` succeeded but should have failed\nstdout:\n{}\nstderr:\n{}",
                shown(&args),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// Starts `mfad serve` and waits until it logs the RADIUS address it bound.
    pub fn start(&self) -> Running {
        self.spawn().running()
    }

    /// Starts `mfad serve` without waiting for it to listen.
    pub fn spawn(&self) -> Starting {
        let mut command = self.command();
        command.arg("serve");
        Starting {
            process: Process::spawn("mfad serve", command),
            dir: Arc::clone(&self.dir),
        }
    }
}

/// An `mfad serve` that may not listen yet.
pub struct Starting {
    process: Process,
    dir: Arc<TempDir>,
}

impl Starting {
    /// Waits until a log line contains `needle`; `false` on timeout or if the server exited.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for_log(&self.process, needle, timeout)
    }

    /// Waits for the server to exit, at most `timeout`; `None` if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_timeout(timeout)
    }

    /// Waits until the server logs the RADIUS address it bound.
    pub fn running(self) -> Running {
        let Starting { mut process, dir } = self;
        let deadline = Instant::now() + START_TIMEOUT;
        let found = process.output().wait_for(deadline, |lines| {
            lines.iter().find_map(|l| listening_addr(l))
        });
        match found {
            Some(Ok(radius_addr)) => Running {
                process,
                radius_addr,
                _dir: dir,
            },
            Some(Err(line)) => {
                process.kill();
                panic!(
                    "mfad logged `{LISTENING}` without a socket address: {line}\nlog:\n{}",
                    process.output().text()
                );
            }
            None => {
                // Closed output usually means exit, which may take a moment to be seen.
                let exited = if Instant::now() < deadline {
                    process.wait_timeout(EXIT_GRACE)
                } else {
                    process.try_status()
                };
                let status = match exited {
                    Some(status) => format!("exited with {status}"),
                    None => format!("still running after {START_TIMEOUT:?}"),
                };
                process.kill();
                panic!(
                    "mfad serve {status} without logging `{LISTENING}<addr>`\nlog:\n{}",
                    process.output().text()
                );
            }
        }
    }
}

/// A running `mfad serve`; killed on drop unless [`Running::stop`] was called.
pub struct Running {
    process: Process,
    radius_addr: SocketAddr,
    /// Keeps the config and database alive while the server runs.
    _dir: Arc<TempDir>,
}

impl Running {
    /// The RADIUS address the server bound, read back from its log.
    pub fn radius_addr(&self) -> SocketAddr {
        self.radius_addr
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Everything the server logged so far (stdout and stderr), ANSI escapes removed.
    pub fn logs(&self) -> String {
        self.process.output().text()
    }

    /// The address another listener logged as `<what> listening on <addr>` (e.g. "sms
    /// webhook"); panics when none is logged within the start-up time.
    pub fn listener_addr(&self, what: &str) -> SocketAddr {
        let marker = format!("{what} listening on ");
        self.process
            .output()
            .wait_for(Instant::now() + START_TIMEOUT, |lines| {
                lines.iter().find_map(|l| {
                    let (_, rest) = l.split_once(&marker)?;
                    rest.split_whitespace().next()?.parse().ok()
                })
            })
            .unwrap_or_else(|| {
                panic!(
                    "mfad logged no `{marker}<addr>`\nlog:\n{}",
                    self.process.output().text()
                )
            })
    }

    /// The address of the first HTTP listener that logged serving `surface`
    /// (`http listening on ADDR serving portal, webhooks`); panics when none is logged
    /// within the start-up time.
    pub fn http_addr(&self, surface: &str) -> SocketAddr {
        self.process
            .output()
            .wait_for(Instant::now() + START_TIMEOUT, |lines| {
                lines.iter().find_map(|l| http_listener(l, surface))
            })
            .unwrap_or_else(|| {
                panic!(
                    "mfad logged no `http listening on <addr> serving ...{surface}...`\nlog:\n{}",
                    self.process.output().text()
                )
            })
    }

    /// `http://ADDR` of the first HTTP listener serving `surface` (plain HTTP, as the
    /// base config's listener is).
    pub fn http_url(&self, surface: &str) -> String {
        format!("http://{}", self.http_addr(surface))
    }

    /// Waits until a log line contains `needle`; `false` on timeout or if the server exited.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for_log(&self.process, needle, timeout)
    }

    /// SIGTERM, then asserts a clean exit within 10 s: a graceful shutdown is part of the
    /// contract.
    pub fn stop(mut self) {
        let pid = self.process.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(sent.success(), "kill -TERM {pid} failed with {sent}");
        match self.process.wait_timeout(STOP_TIMEOUT) {
            Some(status) if status.success() => {}
            Some(status) => panic!(
                "mfad exited with {status} after SIGTERM\nlog:\n{}",
                self.logs()
            ),
            None => {
                self.process.kill();
                panic!(
                    "mfad still running {STOP_TIMEOUT:?} after SIGTERM\nlog:\n{}",
                    self.logs()
                );
            }
        }
    }

    /// SIGKILL: a crash, for tests of durability.
    pub fn kill9(mut self) {
        self.process.kill();
    }
}

/// The address after `radius listening on `, or the line if it has none.
/// Accepts `addr=127.0.0.1:1812` and quoted or comma-terminated tokens too.
fn wait_for_log(process: &Process, needle: &str, timeout: Duration) -> bool {
    process
        .output()
        .wait_for(Instant::now() + timeout, |lines| {
            lines.iter().any(|l| l.contains(needle)).then_some(())
        })
        .is_some()
}

fn listening_addr(line: &str) -> Option<Result<SocketAddr, String>> {
    let (_, rest) = line.split_once(LISTENING)?;
    let token = rest.split_whitespace().next().unwrap_or_default();
    let token = token.rsplit_once('=').map_or(token, |(_, value)| value);
    let token = token.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '.'));
    Some(token.parse().map_err(|_| line.to_owned()))
}

/// The address of an `http listening on ADDR serving a, b` line that lists `surface`.
fn http_listener(line: &str, surface: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("http listening on ")?;
    let (addr, served) = rest.split_once(" serving ")?;
    served
        .split(',')
        .any(|s| s.trim() == surface)
        .then(|| addr.trim().parse().ok())
        .flatten()
}

fn collect_args<I, S>(args: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter().map(|a| a.as_ref().to_owned()).collect()
}

fn shown(args: &[std::ffi::OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_the_token_after_the_marker() {
        let cases = [
            (
                "2024-01-01T00:00:00Z  INFO mfad_radius: radius listening on 127.0.0.1:41234",
                "127.0.0.1:41234",
            ),
            ("radius listening on 127.0.0.1:5 clients=3", "127.0.0.1:5"),
            (
                "INFO serve: radius listening on addr=[::1]:1812",
                "[::1]:1812",
            ),
            ("radius listening on \"127.0.0.1:9\",", "127.0.0.1:9"),
        ];
        for (line, addr) in cases {
            assert_eq!(
                listening_addr(line),
                Some(Ok(addr.parse().unwrap())),
                "{line}"
            );
        }
        assert_eq!(listening_addr("ldap listening on 127.0.0.1:1"), None);
        assert!(matches!(
            listening_addr("radius listening on soon"),
            Some(Err(_))
        ));
    }

    #[test]
    fn an_http_listener_is_found_by_the_surface_it_serves() {
        let line = "2024-01-01T00:00:00Z  INFO mfad_http: http listening on 127.0.0.1:4321 serving portal, webhooks";
        assert_eq!(
            http_listener(line, "webhooks"),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(http_listener(line, "metrics"), None);
        assert_eq!(http_listener(line, "hooks"), None);
    }

    #[test]
    fn base_config_names_files_in_the_temp_dir() {
        let mfad = Mfad::new(Path::new("/bin/true")).with_config("[policy]\nx = 1");
        let written = std::fs::read_to_string(mfad.config_path()).unwrap();
        let dir = mfad.dir().display().to_string();
        assert!(written.starts_with("[server]\nname = \"test-node\"\n"));
        assert!(written.contains(&format!("url = \"sqlite://{dir}/mfad.db\"\n")));
        assert!(written.contains(&format!("key_file = \"{dir}/mfad.key\"\n")));
        assert!(written.contains("[radius]\nlisten = \"127.0.0.1:0\"\n"));
        assert!(written.contains("\n[policy]\nx = 1\n"));
        assert!(written.ends_with(DEFAULT_HTTP), "{written}");
        let replaced = mfad.with_http("");
        let written = std::fs::read_to_string(replaced.config_path()).unwrap();
        assert!(!written.contains("http.listeners"), "{written}");
    }

    /// Stands in for `mfad` in these tests of the harness itself; the real binary is tested
    /// by mfad-server. `mode = "..."` in the config picks a misbehaviour.
    const FAKE_MFAD: &str = r#"#!/usr/bin/env bash
config=$2
shift 2
mode() { grep -q "mode = \"$1\"" "$config"; }
case "$1" in
serve)
    if mode exit-early; then echo "config is broken" >&2; exit 3; fi
    trap 'echo "stopping" >&2; if mode unclean; then exit 1; fi; exit 0' TERM
    printf '\033[2m2024-01-01T00:00:00Z\033[0m \033[32m INFO\033[0m \033[1mmfad\033[0m: radius listening on 127.0.0.1:41234 clients=1\n' >&2
    echo "started" >&2
    while :; do sleep 0.05; done ;;
fail) echo "no such user" >&2; exit 2 ;;
*) echo "args=$* log=$MFAD_LOG" ;;
esac
"#;

    fn fake_mfad(mode: &str) -> (tempfile::TempDir, Mfad) {
        use std::os::unix::fs::PermissionsExt;
        let bin_dir = tempfile::tempdir().unwrap();
        let bin = bin_dir.path().join("mfad");
        std::fs::write(&bin, FAKE_MFAD).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mfad = Mfad::new(&bin).with_config(&format!("[fake]\nmode = \"{mode}\""));
        (bin_dir, mfad)
    }

    fn is_alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn cli_ok_returns_stdout_and_cli_err_returns_stderr() {
        let (_bin, mfad) = fake_mfad("normal");
        assert_eq!(mfad.cli_ok(["user", "list"]), "args=user list log=info\n");
        assert_eq!(mfad.cli_err(["fail"]), "no such user\n");
    }

    #[test]
    #[should_panic(expected = "failed with exit status: 2")]
    fn cli_ok_panics_with_the_status_of_a_failed_command() {
        let (_bin, mfad) = fake_mfad("normal");
        mfad.cli_ok(["fail"]);
    }

    #[test]
    fn started_server_reports_its_address_and_stops_cleanly() {
        let (_bin, mfad) = fake_mfad("normal");
        let server = mfad.start();
        assert_eq!(server.radius_addr(), "127.0.0.1:41234".parse().unwrap());
        assert!(server.wait_for_log("started", Duration::from_secs(10)));
        assert!(server.logs().contains("INFO mfad: radius listening on"));
        assert!(!server.wait_for_log("never logged", Duration::from_millis(1)));
        let pid = server.pid();
        server.stop();
        assert!(!is_alive(pid));
    }

    #[test]
    fn dropped_and_killed_servers_are_gone() {
        let (_bin, mfad) = fake_mfad("normal");
        let dropped = mfad.start();
        let pid = dropped.pid();
        drop(dropped);
        assert!(!is_alive(pid));
        let crashed = mfad.start();
        let pid = crashed.pid();
        crashed.kill9();
        assert!(!is_alive(pid));
    }

    #[test]
    #[should_panic(expected = "exited with exit status: 3 without logging")]
    fn server_that_exits_before_listening_fails_the_start() {
        let (_bin, mfad) = fake_mfad("exit-early");
        drop(mfad.start());
    }

    #[test]
    #[should_panic(expected = "mfad exited with exit status: 1 after SIGTERM")]
    fn unclean_shutdown_fails_the_stop() {
        let (_bin, mfad) = fake_mfad("unclean");
        mfad.start().stop();
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
