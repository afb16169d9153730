//! `mfad-bench`: drives RADIUS PAP load at mfad (HOTP second factor, durable replay
//! protection) and at a FreeRADIUS PAP reference on the same machine, and reports
//! successful authentications per second, latency, success rate and peak memory.

mod load;
mod setup;

use anyhow::{bail, Context};
use clap::Parser;
use load::{Mode, Report};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "RADIUS benchmark: mfad (PAP + HOTP) against FreeRADIUS (PAP)")]
struct Args {
    /// Users (each with an HOTP token) created in mfad's store.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Skip the FreeRADIUS reference run.
    #[arg(long)]
    no_reference: bool,
    /// The mfad binary (default: next to this one).
    #[arg(long)]
    mfad: Option<PathBuf>,
    /// SQLite synchronous mode for mfad: full or normal.
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// The store instead of SQLite in a temp dir: `postgres://USER@HOST:PORT` (no
    /// database name) creates a fresh database there for the run and drops it after; a
    /// URL with a database name uses that database, which must be empty.
    #[arg(long)]
    store_url: Option<String>,
    /// mfad nodes on the store, each on its own loopback address; the load is spread
    /// evenly over them.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mfad = match &args.mfad {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("mfad"),
    };
    if !mfad.is_file() {
        bail!(
            "{} not found; build it first with 'cargo build --release -p mfad-server'",
            mfad.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let duration = Duration::from_secs(args.duration);
    let c = args.concurrency;

    eprintln!("creating {} users with HOTP tokens ...", args.users);
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let site = setup::Site::create(
        &mfad,
        args.users,
        &args.synchronous,
        args.store_url.as_deref(),
        args.nodes,
    )?;
    let servers = site.start()?;
    let targets: Vec<_> = servers.iter().map(|s| s.radius_addr()).collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.pid()).collect();
    let valid = runtime.block_on(load::run(
        &targets,
        &pids,
        &site,
        Mode::Hotp {
            wrong_every_other: false,
        },
        c,
        duration,
    ))?;
    let wrong = runtime.block_on(load::run(
        &targets,
        &pids,
        &site,
        Mode::Hotp {
            wrong_every_other: true,
        },
        c,
        duration,
    ))?;
    let rss_kb = pids
        .iter()
        .map(|&pid| setup::peak_rss_kb(pid).context("reading the server's peak RSS"))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or_default();
    for server in servers {
        server.kill9();
    }

    // Every code accepted before the SIGKILL must still be rejected after a restart.
    let server = site.start_one()?;
    let replay = runtime.block_on(load::replay_last_accepted(server.radius_addr(), &site))?;
    server.stop();

    let reference = if args.no_reference {
        None
    } else {
        let freeradius = setup::freeradius(args.users.min(100_000));
        Some(runtime.block_on(load::run(
            &[freeradius.addr()],
            &[freeradius.pid()],
            &site,
            Mode::Pap,
            c,
            duration,
        ))?)
    };

    let store = match &args.store_url {
        Some(url) => format!("store={}", mfad_store::redact(url)),
        None => format!("store=sqlite, synchronous={}", args.synchronous),
    };
    println!(
        "mfad-bench: {} users, concurrency {c}, {} s per run, {store}, {} node(s)",
        args.users, args.duration, args.nodes
    );
    println!("{}", Report::header());
    println!("{}", valid.line("mfad PAP+HOTP, valid codes"));
    println!("{}", wrong.line("mfad PAP+HOTP, 50% wrong codes"));
    if let Some(reference) = &reference {
        println!("{}", reference.line("FreeRADIUS PAP (reference)"));
        println!(
            "ratio mfad/FreeRADIUS (successful auth/s): {:.2}",
            valid.rate() / reference.rate().max(1e-9)
        );
    }
    println!(
        "mfad peak RSS (largest node): {:.1} MiB",
        rss_kb as f64 / 1024.0
    );
    println!(
        "after SIGKILL and restart: of {} previously accepted codes sent again, {} rejected (must be all), {} accepted, {} unanswered",
        replay.sent, replay.rejected, replay.accepted, replay.unanswered
    );
    if replay.accepted > 0 {
        bail!("replay protection did not survive SIGKILL");
    }
    if !replay.held() {
        bail!(
            "the replay check proves nothing: {} of {} codes sent again were rejected ({} unanswered)",
            replay.rejected,
            replay.sent,
            replay.unanswered
        );
    }
    Ok(())
}
