//! Command dispatch and what every command shares: the config, the store, the engine.

mod client;
mod directory;
pub mod email;
mod log;
mod secret;
mod setting;
mod snapshot;
mod token;
mod user;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, Layers};
use crate::system::{OsRandom, SystemClock};
use anyhow::Context;
use mfad_core::clock::{Clock, Random};
use mfad_core::engine::{Engine, ServerInfo};
use mfad_core::model::User;
use mfad_core::service::{self, Access, Clients, MailRules, Mails, Pins, Tokens, Users};
use mfad_core::settings::Setting;
use mfad_core::store::Store;
use mfad_directory::LdapDirectory;
use std::sync::Arc;

/// What a command works with.
#[derive(Clone)]
pub struct Ctx {
    /// The configuration in force: the file's with the stored settings over it.
    pub config: Config,
    /// The file and environment layers, to lay changed stored settings over.
    pub layers: Layers,
    /// The stored settings as read when the command started.
    pub settings: Vec<Setting>,
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub rng: Arc<dyn Random>,
    pub directory: Option<Arc<LdapDirectory>>,
    /// The SMS gateway, whose credentials `mfad serve` replaces when settings change
    /// and whose inbound webhook it serves in two-way mode.
    pub sms: Option<Arc<mfad_notify::LiveSms>>,
    /// The voice gateway, whose webhooks `mfad serve` serves and whose credentials it
    /// replaces when settings change.
    pub voice: Option<Arc<mfad_notify::LiveVoice>>,
}

impl Ctx {
    pub async fn open(layers: Layers, server_ip: String) -> anyhow::Result<Self> {
        let base = layers.unchecked()?;
        let store = open_store(&base, &base.store.url).await?;
        let (config, settings) = in_force(&layers, &*store).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let rng: Arc<dyn Random> = Arc::new(OsRandom);
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
            rng.clone(),
            config.policy.clone(),
            server,
        );
        if let Some(directory) = &directory {
            engine = engine.with_directory(directory.clone());
        }
        let sms = mfad_notify::SmsGateway::new(&config.sms)?
            .map(|gateway| Arc::new(mfad_notify::LiveSms::new(gateway)));
        if let Some(sms) = &sms {
            engine = engine.with_sms(sms.clone());
        }
        if config.smtp.enabled() && !config.email.fraud_alerts_to.is_empty() {
            let templates = mfad_notify::Templates::load_with(
                email_templates_dir(&config),
                &crate::settings::templates(&settings),
            )
            .context("while loading the e-mail templates")?;
            engine = engine.with_alerts(Arc::new(mfad_notify::alerts::MailAlerts::new(
                store.clone(),
                templates,
                config.email.language.clone(),
                config.email.fraud_alerts_to.clone(),
                config.policy.fraud.block_user,
            )));
        }
        let voice = mfad_notify::TwilioVoice::new(&config.voice)?
            .map(|gateway| Arc::new(mfad_notify::LiveVoice::new(gateway)));
        if let Some(voice) = &voice {
            engine = engine.with_voice(voice.clone());
        }
        let engine = Arc::new(engine);
        Ok(Self {
            config,
            layers,
            settings,
            store,
            engine,
            clock,
            rng,
            directory,
            sms,
            voice,
        })
    }

    /// The stored user for a typed name (same normalisation as logins).
    pub async fn user(&self, name: &str) -> Result<User, service::Error> {
        self.users().find(name).await
    }

    /// The operator services, with the configuration in force.
    pub fn users(&self) -> Users {
        Users::new(self.store.clone(), self.clock.clone(), &self.config.policy)
    }

    pub fn access(&self) -> Access {
        Access::new(self.store.clone(), self.clock.clone(), &self.config.policy)
    }

    pub fn pins(&self) -> Pins {
        Pins::new(self.store.clone(), self.rng.clone(), &self.config.policy)
    }

    pub fn tokens(&self) -> Tokens {
        Tokens::new(
            self.store.clone(),
            self.clock.clone(),
            self.rng.clone(),
            &self.config.server.issuer,
        )
    }

    pub fn clients(&self) -> Clients {
        let targets = self.config.radius.targets.iter();
        Clients::new(
            self.store.clone(),
            self.clock.clone(),
            targets.map(|t| t.name.clone()).collect(),
            self.config.directory.is_some(),
        )
    }

    pub fn mails(&self) -> Mails {
        let rules = MailRules {
            smtp: self.config.smtp.enabled(),
            send_to_users: self.config.email.send_to_users,
            send_updates: self.config.email.send_updates,
            generate_pins: self
                .config
                .directory
                .as_ref()
                .is_some_and(|d| d.generate_pins),
        };
        Mails::new(self.store.clone(), self.clock.clone(), rules)
    }

    /// The same parts with the configuration and stored settings in force now, for a
    /// task of `mfad serve` that runs long after the start.
    pub async fn refreshed(&self) -> anyhow::Result<Ctx> {
        let (config, settings) = in_force(&self.layers, &*self.store).await?;
        Ok(Ctx {
            config,
            settings,
            ..self.clone()
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// The configuration in force at start and the stored settings it was made from. Stored
/// settings that cannot be read or do not fit the configuration are reported and left
/// out, so a command can still run (and `mfad setting unset` can repair them).
async fn in_force(layers: &Layers, store: &dyn Store) -> anyhow::Result<(Config, Vec<Setting>)> {
    let settings = match store.list_settings().await {
        Ok(settings) => settings,
        Err(err) => {
            tracing::warn!(
                "stored settings cannot be read, the config file alone is in force: {err}"
            );
            return Ok((layers.base()?, Vec::new()));
        }
    };
    match crate::settings::effective(layers, &settings) {
        Ok(config) => Ok((config, settings)),
        Err(err) => {
            // When the file alone is broken, that is the one error to report.
            let base = layers.base()?;
            tracing::warn!(
                "stored settings are not applied, the config file alone is in force: {err:#}"
            );
            Ok((base, settings))
        }
    }
}

/// The e-mail templates in force: stored, then the operator's directory, then shipped.
pub fn templates(ctx: &Ctx) -> anyhow::Result<mfad_notify::Templates> {
    mfad_notify::Templates::load_with(
        email_templates_dir(&ctx.config),
        &crate::settings::templates(&ctx.settings),
    )
    .context("while loading the e-mail templates")
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
    let layers = config::layers(cli.config.as_deref())?;
    let cli = match cli.command {
        Command::Serve => return crate::serve::run(layers).await,
        Command::Store(crate::cli::StoreCommand::Copy { from, to }) => {
            return snapshot::copy(&layers.base()?, &from, &to).await
        }
        _ => cli,
    };
    let ctx = Ctx::open(layers, String::new()).await?;
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
        Command::Setting(cmd) => setting::run(&ctx, cmd).await,
        Command::Template(cmd) => setting::template(&ctx, cmd).await,
    };
    ctx.store.flush().await?;
    result
}
