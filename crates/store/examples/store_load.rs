//! A quick load check of the SQLite store's hot path (not a timed test).
//!
//! Each of N tasks repeats what one successful authentication costs the store: one
//! `auth_subject`, one `advance_token` (durable replay protection) and one
//! `append_audit`. `--bypass-check yes` adds the `consume_bypass` call the engine makes
//! on every authentication. Prints authentications per second and latency percentiles.
//!
//! ```text
//! cargo run --release -p mfad-store --example store_load -- [--dir DIR] [--users 1000]
//!     [--tasks 32] [--seconds 5] [--synchronous full|normal] [--bypass-check yes|no]
//! ```

use mfad_core::store::Store;
use mfad_store::conformance::{audit_record, new_token, new_user};
use mfad_store::{Cipher, SqliteOptions, SqliteStore, Synchronous};
use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    dir: Option<PathBuf>,
    users: u32,
    tasks: u32,
    seconds: u64,
    synchronous: Synchronous,
    bypass_check: bool,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut args = Args {
        dir: None,
        users: 1000,
        tasks: 32,
        seconds: 5,
        synchronous: Synchronous::Full,
        bypass_check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => args.dir = Some(value.into()),
            "--users" => args.users = value.parse()?,
            "--tasks" => args.tasks = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--synchronous" => {
                args.synchronous = match value.as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    other => return Err(format!("unknown synchronous mode '{other}'").into()),
                }
            }
            "--bypass-check" => args.bypass_check = value == "yes",
            other => return Err(format!("unknown option '{other}'").into()),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    // Nearest-rank percentile; the float-to-index cast is bounded by the length.
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let scratch = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let cipher = Cipher::load_or_create(&scratch.path().join("mfad.key"))?;
    let options = SqliteOptions {
        synchronous: args.synchronous,
        ..SqliteOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        &scratch.path().join("mfad.db"),
        cipher,
        options,
    )?);

    let batch: Vec<_> = (0..args.users)
        .map(|n| {
            (
                new_user(&format!("user{n}")),
                vec![new_token(&format!("T{n}"), None)],
            )
        })
        .collect();
    store.create_users_with_tokens(&batch, 0).await?;
    println!(
        "{} users in {}, synchronous={:?}, {} tasks, {} s, bypass check {}",
        args.users,
        scratch.path().display(),
        args.synchronous,
        args.tasks,
        args.seconds,
        args.bypass_check
    );

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.tasks)
        .map(|task| {
            let store = Arc::clone(&store);
            let (users, tasks, bypass_check) = (args.users, args.tasks, args.bypass_check);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut user = task % users;
                while Instant::now() < deadline {
                    let begin = Instant::now();
                    let name = format!("user{user}");
                    let (user_row, tokens) =
                        store.auth_subject(&name).await?.ok_or("user missing")?;
                    if bypass_check && store.consume_bypass(user_row.id, 0).await? {
                        return Err("nobody was granted a bypass".into());
                    }
                    let token = tokens.first().ok_or("token missing")?;
                    // Users are split between tasks (user % tasks == task), so the next counter
                    // value is always fresh and accepted.
                    if !store.advance_token(token.id, token.next).await? {
                        return Err("a fresh code was refused".into());
                    }
                    let mut record = audit_record(task, &name, 0);
                    record.device.clone_from(&token.serial);
                    store.append_audit(record).await?;
                    latencies.push(u32::try_from(begin.elapsed().as_micros()).unwrap_or(u32::MAX));
                    user = if user + tasks < users {
                        user + tasks
                    } else {
                        task % users
                    };
                }
                Ok::<_, Box<dyn Error + Send + Sync>>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed();
    store.flush().await?;
    latencies.sort_unstable();
    let count = latencies.len();
    println!(
        "{count} authentications in {:.2} s: {:.0}/s; latency p50 {} us, p99 {} us, max {} us",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    // A write-ahead log that keeps growing under load would mean checkpoints starve.
    let size = |name: &str| std::fs::metadata(scratch.path().join(name)).map_or(0, |m| m.len());
    println!(
        "database {} KiB, write-ahead log {} KiB",
        size("mfad.db") / 1024,
        size("mfad.db-wal") / 1024
    );
    Ok(())
}
