//! PostgreSQL for tests: a fresh database on the machine's server ([`PgDatabase`]), or a
//! private cluster started with Debian's `initdb` and `pg_ctl` on a temp dir and a free
//! port ([`PgCluster`]), which a test may stop and start to take the database away.
//!
//! Everything goes through the real client programs (`psql`, `pg_dump`), so the harness
//! needs no database driver of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::process::run_with_input;

/// The machine's server, as the design names it; `MFAD_TEST_PG` overrides it with a
/// URL without a database name, e.g. `postgres://postgres@db.example:5432`.
const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Where Debian installs each major version's server programs.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";

static DATABASES: AtomicU32 = AtomicU32::new(0);

/// Runs `program args...` (from PATH or the server's bin dir), failing the test on error;
/// returns stdout.
fn run(program: &Path, args: &[&str], what: &str) -> String {
    let mut command = Command::new(program);
    command.args(args);
    let (status, stdout, stderr) = run_with_input(what, command, &[], CLIENT_TIMEOUT);
    match status {
        Some(s) if s.success() => stdout,
        Some(s) => panic!("{what} failed with {s}\nstdout:\n{stdout}\nstderr:\n{stderr}"),
        None => panic!("{what} hung for {CLIENT_TIMEOUT:?}\nstderr:\n{stderr}"),
    }
}

fn psql(server: &str, database: &str, sql: &str) -> String {
    let url = format!("{server}/{database}");
    run(
        &crate::require_tool("psql"),
        &[
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &url,
            "-c",
            sql,
        ],
        &format!("psql -c {sql:?}"),
    )
}

/// A uniquely named, empty database, dropped (with its connections) when this is dropped.
pub struct PgDatabase {
    server: String,
    name: String,
}

impl PgDatabase {
    /// A fresh database on the machine's PostgreSQL (127.0.0.1:5432, user postgres).
    pub fn create() -> PgDatabase {
        let server = std::env::var("MFAD_TEST_PG").unwrap_or_else(|_| DEFAULT_SERVER.into());
        PgDatabase::create_on(&server)
    }

    /// A fresh database on the server `server` (a URL without a database name).
    pub fn create_on(server: &str) -> PgDatabase {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "mfad_test_{}_{}_{nanos}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        psql(server, "postgres", &format!("CREATE DATABASE {name}"));
        PgDatabase {
            server: server.trim_end_matches('/').to_owned(),
            name,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL mfad connects with.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// Runs SQL in this database and returns psql's unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.server, &self.name, sql)
    }

    /// Every row of every table as `pg_dump --data-only` writes it.
    pub fn dump(&self) -> Vec<u8> {
        run(
            &crate::require_tool("pg_dump"),
            &["--data-only", "--no-owner", "-d", &self.url()],
            "pg_dump",
        )
        .into_bytes()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // WITH (FORCE) ends the connections a store (or a killed node) left open.
        let url = format!("{}/postgres", self.server);
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let mut command = Command::new("psql");
        command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c", &sql]);
        let _ = run_with_input("psql (drop database)", command, &[], CLIENT_TIMEOUT);
    }
}

/// A private PostgreSQL cluster on a free port, removed with its temp dir on drop.
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

/// The newest server version Debian installed, e.g. `/usr/lib/postgresql/15/bin`.
fn server_bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_PG_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => crate::require_file("PostgreSQL server programs (initdb, pg_ctl)", None),
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl PgCluster {
    /// Runs `initdb` (trust authentication, user `postgres`) and starts the server on
    /// 127.0.0.1 and a free port. As root, the server programs run as the `postgres`
    /// user, since PostgreSQL refuses to run as root.
    pub fn start() -> PgCluster {
        let dir = tempfile::Builder::new()
            .prefix("mfad-pg-")
            .tempdir()
            .expect("create a temp dir for PostgreSQL");
        let mut cluster = PgCluster {
            bin: server_bin_dir(),
            port: 0,
            running: false,
            dir,
        };
        if running_as_root() {
            let path = cluster.dir.path().display().to_string();
            run(Path::new("chown"), &["postgres:postgres", &path], "chown");
        }
        let data = cluster.data_dir().display().to_string();
        cluster.server_program(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_again();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_program(&self, name: &str, args: &[&str]) -> String {
        let program = self.bin.join(name);
        if running_as_root() {
            let mut all = vec!["-u", "postgres", "--", program.to_str().unwrap_or_default()];
            all.extend_from_slice(args);
            run(Path::new("runuser"), &all, name)
        } else {
            run(&program, args, name)
        }
    }

    /// Starts the server (again, after [`PgCluster::stop`]) and waits until it accepts
    /// connections. The first start takes a free port; later ones reuse it, so URLs stay
    /// valid.
    pub fn start_again(&mut self) {
        assert!(!self.running, "the cluster is already running");
        let retries = if self.port == 0 { 5 } else { 1 };
        for attempt in 0..retries {
            if self.port == 0 || attempt > 0 {
                let listener =
                    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
                self.port = listener.local_addr().expect("local_addr").port();
            }
            let data = self.data_dir().display().to_string();
            let log = self.dir.path().join("server.log").display().to_string();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                self.port,
                self.dir.path().display()
            );
            let program = self.bin.join("pg_ctl");
            let mut args: Vec<String> = Vec::new();
            if running_as_root() {
                args.extend(["-u", "postgres", "--"].map(String::from));
                args.push(program.display().to_string());
            }
            args.extend(
                [
                    "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
                ]
                .map(String::from),
            );
            let mut command = if running_as_root() {
                Command::new("runuser")
            } else {
                Command::new(&program)
            };
            command.args(&args);
            let (status, _, stderr) = run_with_input("pg_ctl start", command, &[], CLIENT_TIMEOUT);
            if status.is_some_and(|s| s.success()) {
                self.running = true;
                return;
            }
            if attempt + 1 == retries {
                let log =
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
                panic!("pg_ctl start failed: {stderr}\nserver log:\n{log}");
            }
        }
    }

    /// Stops the server at once, as a crash or a lost machine would (`pg_ctl -m
    /// immediate`): open connections break, new ones are refused.
    pub fn stop(&mut self) {
        let data = self.data_dir().display().to_string();
        self.server_program("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        self.running = false;
    }

    /// The server without a database name: `postgres://postgres@127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// A fresh database on this cluster.
    pub fn create_database(&self) -> PgDatabase {
        PgDatabase::create_on(&self.server_url())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir().display().to_string();
            let program = self.bin.join("pg_ctl");
            let mut command = if running_as_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            } else {
                Command::new(&program)
            };
            command.args(["-D", &data, "-m", "immediate", "-w", "stop"]);
            let _ = run_with_input("pg_ctl stop", command, &[], CLIENT_TIMEOUT);
        }
    }
}
