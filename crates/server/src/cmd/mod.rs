//! Command dispatch and what every command shares: the config, the store, the engine.

mod client;
mod log;
mod snapshot;
mod token;
mod user;

use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use crate::system::{OsRandom, SystemClock};
use anyhow::Context;
use mfad_core::clock::Clock;
use mfad_core::engine::{Engine, ServerInfo};
use mfad_core::model::User;
use mfad_core::store::Store;
use mfad_core::username;
use std::sync::Arc;

/// What a command works with.
pub struct Ctx {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
}

impl Ctx {
    pub async fn open(config: Config, server_ip: String) -> anyhow::Result<Self> {
        let store = open_store(&config, &config.store.url).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let server = ServerInfo {
            name: config.node_name(),
            ip: server_ip,
        };
        let engine = Arc::new(Engine::new(
            store.clone(),
            clock.clone(),
            Arc::new(OsRandom),
            config.policy.clone(),
            server,
        ));
        Ok(Self {
            config,
            store,
            engine,
            clock,
        })
    }

    /// The stored user for a typed name (same normalisation as logins).
    pub async fn user(&self, name: &str) -> anyhow::Result<User> {
        for candidate in username::candidates(name) {
            if let Some(user) = self.store.user_by_name(&candidate).await? {
                return Ok(user);
            }
        }
        anyhow::bail!("user '{name}' does not exist; see 'mfad user list'")
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Opens the store `url` names with the config's key file and backend settings.
pub async fn open_store(config: &Config, url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let synchronous = if config.store.synchronous == "normal" {
        mfad_store::Synchronous::Normal
    } else {
        mfad_store::Synchronous::Full
    };
    let options = mfad_store::OpenOptions {
        sqlite: mfad_store::SqliteOptions {
            synchronous,
            ..Default::default()
        },
        postgres: mfad_store::PgOptions {
            pool_size: config.store.pool_size,
            timeout: std::time::Duration::from_millis(config.store.timeout_ms),
        },
    };
    mfad_store::open(url, &config.store.key_file, options)
        .await
        .with_context(|| format!("while opening the store {}", mfad_store::redact(url)))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = config::load(cli.config.as_deref())?;
    let cli = match cli.command {
        Command::Serve => return crate::serve::run(config).await,
        Command::Store(crate::cli::StoreCommand::Copy { from, to }) => {
            return snapshot::copy(&config, &from, &to).await
        }
        _ => cli,
    };
    let ctx = Ctx::open(config, String::new()).await?;
    let result = match cli.command {
        Command::Serve | Command::Store(_) => Ok(()),
        Command::Backup { file } => snapshot::backup(&ctx, &file).await,
        Command::Restore { file } => snapshot::restore(&ctx, &file).await,
        Command::User(cmd) => user::run(&ctx, cmd).await,
        Command::Token(cmd) => token::run(&ctx, cmd).await,
        Command::Client(cmd) => client::run(&ctx, cmd).await,
        Command::Bypass { user, seconds } => user::bypass(&ctx, &user, seconds).await,
        Command::Log(args) => log::run(&ctx, args).await,
    };
    ctx.store.flush().await?;
    result
}
