//! `mfad`: the multi-factor authentication server and its operator commands.

// Output goes through `out!`/`outln!`, which end quietly when the reader of a pipe
// goes away; `print!` would panic there.
#![warn(clippy::print_stdout)]

#[macro_use]
mod output;

mod cli;
mod cmd;
mod config;
mod live;
mod serve;
mod settings;
mod system;

use clap::Parser;
use std::process::ExitCode;

// Every request allocates a few dozen small buffers across threads; mimalloc's
// per-thread free lists serve them for a fraction of the system allocator's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `mfad user list | head -1`: the reader has what it wanted.
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: what went wrong, with its causes.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `MFAD_LOG` takes a tracing filter such as `info` or `mfad_radius=debug`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MFAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
