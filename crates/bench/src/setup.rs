//! The benchmark's site: an mfad store with N users holding HOTP tokens, and the
//! FreeRADIUS reference with the same users as PAP accounts.

use mfad_core::model::{NewToken, NewUser, Secret};
use mfad_core::otp::{Algorithm, OtpKind};
use mfad_testkit::{FreeRadius, Mfad, PgDatabase, Running};
use std::path::Path;

pub const SECRET: &str = "benchmark-shared-secret-0123456789";

pub struct Site {
    /// One config per node; all name the same store and key.
    nodes: Vec<Mfad>,
    pub users: usize,
    /// A database created for this run (dropped with the site).
    _database: Option<PgDatabase>,
}

/// A PostgreSQL URL without a database name (`postgres://user@host:port` or with a
/// trailing `/`): the benchmark creates a fresh database there and drops it after.
fn names_no_database(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("postgres://")
        .or_else(|| lower.strip_prefix("postgresql://"));
    match rest {
        Some(rest) => rest
            .split_once('/')
            .is_none_or(|(_, db)| db.split('?').next().unwrap_or_default().is_empty()),
        None => false,
    }
}

pub fn username(i: usize) -> String {
    format!("user{i:07}")
}

/// Each user's HOTP key: distinct and reproducible, so the load generator can compute codes.
pub fn key(i: usize) -> Vec<u8> {
    format!("bench-key-{i:010}").into_bytes()
}

impl Site {
    /// `store_url`: `None` for SQLite in a temp dir, else the store every node uses.
    pub fn create(
        bin: &Path,
        users: usize,
        synchronous: &str,
        store_url: Option<&str>,
        nodes: usize,
    ) -> anyhow::Result<Site> {
        // The server reads this through its environment overlay.
        std::env::set_var("MFAD__STORE__SYNCHRONOUS", synchronous);
        // Measure capacity, not the deliberate delay of rejects.
        std::env::set_var("MFAD__RADIUS__REJECT_DELAY_MS", "0");
        let mut mfad = Mfad::new(bin).with_config("[policy]\nmax_failures = 100\n");
        let mut database = None;
        if let Some(url) = store_url {
            let url = if names_no_database(url) {
                let db = PgDatabase::create_on(url.trim_end_matches('/'));
                let fresh = db.url();
                database = Some(db);
                fresh
            } else {
                url.to_owned()
            };
            mfad = mfad.with_store_url(&url);
        }
        mfad.add_client("bench", "127.0.0.1", SECRET);
        let url = mfad.store_url().to_owned();
        let key_file = mfad.dir().join("mfad.key");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let store = mfad_store::open(&url, &key_file, Default::default()).await?;
            let mut i = 0;
            while i < users {
                let end = (i + 10_000).min(users);
                let batch: Vec<(NewUser, Vec<NewToken>)> = (i..end)
                    .map(|n| {
                        let user = NewUser {
                            username: username(n),
                            ..NewUser::default()
                        };
                        let token = NewToken {
                            serial: format!("bench-{n}"),
                            user_id: None,
                            kind: OtpKind::Hotp,
                            algorithm: Algorithm::Sha1,
                            digits: 6,
                            period: 30,
                            secret: Secret::new(key(n)),
                            next: 0,
                        };
                        (user, vec![token])
                    })
                    .collect();
                store.create_users_with_tokens(&batch, 0).await?;
                i = end;
            }
            store.flush().await?;
            anyhow::Ok(())
        })?;
        // Node k listens on 127.0.0.(k+1): its own address, as on its own machine.
        let mut all = Vec::with_capacity(nodes.max(1));
        for k in 1..nodes.max(1) {
            all.push(
                Mfad::new(bin)
                    .sharing_store_with(&mfad)
                    .with_name(&format!("bench-node-{}", k + 1))
                    .with_listen(&format!("127.0.0.{}:0", k + 1))
                    .with_config("[policy]\nmax_failures = 100\n"),
            );
        }
        all.insert(0, mfad.with_name("bench-node-1"));
        Ok(Site {
            nodes: all,
            users,
            _database: database,
        })
    }

    /// Starts every node.
    pub fn start(&self) -> anyhow::Result<Vec<Running>> {
        Ok(self.nodes.iter().map(Mfad::start).collect())
    }

    /// Starts the first node only.
    pub fn start_one(&self) -> anyhow::Result<Running> {
        self.nodes
            .first()
            .map(Mfad::start)
            .ok_or_else(|| anyhow::anyhow!("no nodes"))
    }
}

/// FreeRADIUS with `users` PAP accounts named like mfad's, password `pw-<name>`.
pub fn freeradius(users: usize) -> FreeRadius {
    let mut builder = FreeRadius::builder(SECRET);
    for i in 0..users {
        let name = username(i);
        builder = builder.user(&name, &format!("pw-{name}"));
    }
    builder.start()
}

/// The peak resident set size of a process (VmHWM), in KiB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
