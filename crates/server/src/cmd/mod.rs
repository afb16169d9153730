//! Command dispatch and what every command shares: the config, the store, the engine.

mod client;
mod directory;
mod email;
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
use mfad_directory::LdapDirectory;
use std::sync::Arc;

/// What a command works with.
pub struct Ctx {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub directory: Option<Arc<LdapDirectory>>,
    /// The voice gateway, whose webhooks `mfad serve` serves.
    pub voice: Option<Arc<mfad_notify::TwilioVoice>>,
    /// The SMS gateway, whose inbound webhook `mfad serve` serves in two-way mode.
    pub sms: Option<Arc<mfad_notify::SmsGateway>>,
}

impl Ctx {
    pub async fn open(config: Config, server_ip: String) -> anyhow::Result<Self> {
        let store = open_store(&config, &config.store.url).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let server = ServerInfo {
            name: config.node_name(),
            ip: server_ip,
        };
        let directory = match &config.directory {
            Some(directory) => Some(Arc::new(LdapDirectory::new(directory.clone())?)),
            None => None,
        };
        let mut engine = Engine::new(
            store.clone(),
            clock.clone(),
            Arc::new(OsRandom),
            config.policy.clone(),
            server,
        );
        if let Some(directory) = &directory {
            engine = engine.with_directory(directory.clone());
        }
        let sms = mfad_notify::SmsGateway::new(&config.sms)?.map(Arc::new);
        if let Some(gateway) = &sms {
            engine = engine.with_sms(gateway.clone());
        }
        if config.smtp.enabled() && !config.email.fraud_alerts_to.is_empty() {
            let templates = mfad_notify::Templates::load(email_templates_dir(&config))
                .context("while loading the e-mail templates")?;
            engine = engine.with_alerts(Arc::new(mfad_notify::alerts::MailAlerts::new(
                store.clone(),
                templates,
                config.email.language.clone(),
                config.email.fraud_alerts_to.clone(),
                config.policy.fraud.block_user,
            )));
        }
        let voice = mfad_notify::TwilioVoice::new(&config.voice)?;
        if let Some(voice) = &voice {
            engine = engine.with_voice(voice.clone());
        }
        let engine = Arc::new(engine);
        Ok(Self {
            config,
            store,
            engine,
            clock,
            directory,
            voice,
            sms,
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

/// The operator's template directory, if configured.
pub fn email_templates_dir(config: &Config) -> Option<&std::path::Path> {
    email::dir_option(&config.email.templates_dir)
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
        Command::Directory(cmd) => directory::run(&ctx, cmd).await,
        Command::Email(cmd) => email::run(&ctx, cmd).await,
    };
    ctx.store.flush().await?;
    result
}
