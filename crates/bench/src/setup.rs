//! The benchmark's site: an mfad store with N users holding HOTP tokens, and the
//! FreeRADIUS reference with the same users as PAP accounts.

use mfad_core::model::{NewToken, NewUser, Secret};
use mfad_core::otp::{Algorithm, OtpKind};
use mfad_testkit::{FreeRadius, Mfad, Running};
use std::path::Path;

pub const SECRET: &str = "benchmark-shared-secret-0123456789";

pub struct Site {
    mfad: Mfad,
    pub users: usize,
}

pub fn username(i: usize) -> String {
    format!("user{i:07}")
}

/// Each user's HOTP key: distinct and reproducible, so the load generator can compute codes.
pub fn key(i: usize) -> Vec<u8> {
    format!("bench-key-{i:010}").into_bytes()
}

impl Site {
    pub fn create(bin: &Path, users: usize, synchronous: &str) -> anyhow::Result<Site> {
        // The server reads this through its environment overlay.
        std::env::set_var("MFAD__STORE__SYNCHRONOUS", synchronous);
        // Measure capacity, not the deliberate delay of rejects.
        std::env::set_var("MFAD__RADIUS__REJECT_DELAY_MS", "0");
        let mfad = Mfad::new(bin).with_config("[policy]\nmax_failures = 100\n");
        mfad.cli_ok([
            "client",
            "add",
            "bench",
            "--address",
            "127.0.0.1",
            "--secret",
            SECRET,
        ]);
        let url = format!("sqlite://{}", mfad.dir().join("mfad.db").display());
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
        Ok(Site { mfad, users })
    }

    pub fn start(&self) -> anyhow::Result<Running> {
        Ok(self.mfad.start())
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
