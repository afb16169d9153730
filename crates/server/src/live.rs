//! Live settings: each `mfad serve` node polls the store's settings version and, after a
//! change on any node, puts the new policy, SMS gateway and SMTP credentials in force
//! without a restart. A change that does not apply is logged and the settings in force
//! stay as they were (fail safe).

use crate::config::{Config, Layers};
use mfad_core::engine::Engine;
use mfad_core::store::Store;
use mfad_notify::outbox::MailerSlot;
use mfad_notify::{Mailer, SmsGateway, TwilioVoice};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// How often a node asks the store whether settings changed: one small read, so a
/// change is in force on every node well within 5 s.
pub const POLL: Duration = Duration::from_secs(1);

/// What the poller updates.
pub struct Reloader {
    pub store: Arc<dyn Store>,
    pub layers: Layers,
    pub engine: Arc<Engine>,
    pub sms: Option<Arc<mfad_notify::LiveSms>>,
    pub voice: Option<Arc<mfad_notify::LiveVoice>>,
    pub mailer: Option<MailerSlot>,
    /// The configuration in force.
    pub applied: Config,
    /// The settings version it was made from.
    pub version: Option<i64>,
}

impl Reloader {
    /// Polls every [`POLL`] until `stop`.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unreachable = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match self.poll().await {
                Ok(()) => unreachable = false,
                // Said once per outage, not every second.
                Err(err) if !unreachable => {
                    unreachable = true;
                    tracing::warn!("cannot check the stored settings, those in force stay: {err}");
                }
                Err(_) => {}
            }
        }
    }

    async fn poll(&mut self) -> Result<(), mfad_core::store::StoreError> {
        let version = self.store.settings_version().await?;
        if self.version == Some(version) {
            return Ok(());
        }
        let settings = self.store.list_settings().await?;
        // Whatever the outcome, this version was looked at: a broken change is logged
        // once, and the next change is tried afresh.
        self.version = Some(version);
        match crate::settings::effective(&self.layers, &settings) {
            Ok(config) => self.apply(config, version),
            Err(err) => tracing::warn!(
                version,
                "stored settings not applied, the previous ones stay in force: {err:#}"
            ),
        }
        Ok(())
    }

    /// Builds what changed first, then swaps it all in, so a part that cannot be built
    /// leaves everything as it was.
    fn apply(&mut self, config: Config, version: i64) {
        let not_applied = |err: &dyn std::fmt::Display| {
            tracing::warn!(
                version,
                "stored settings not applied, the previous ones stay in force: {err}"
            );
        };
        let sms = if self.sms.is_some() && config.sms != self.applied.sms {
            match SmsGateway::new(&config.sms) {
                Ok(gateway) => gateway,
                Err(err) => return not_applied(&err),
            }
        } else {
            None
        };
        let voice = if self.voice.is_some() && config.voice != self.applied.voice {
            match TwilioVoice::new(&config.voice) {
                Ok(gateway) => gateway,
                Err(err) => return not_applied(&err),
            }
        } else {
            None
        };
        let mailer = if self.mailer.is_some() && config.smtp != self.applied.smtp {
            match Mailer::new(&config.smtp) {
                Ok(mailer) => Some(mailer),
                Err(err) => return not_applied(&err),
            }
        } else {
            None
        };
        let mut changed = Vec::new();
        if self.engine.set_policy(config.policy.clone()) {
            changed.push("policy");
        }
        if let (Some(live), Some(gateway)) = (&self.sms, sms) {
            live.replace(gateway);
            changed.push("sms");
        }
        if let (Some(live), Some(gateway)) = (&self.voice, voice) {
            live.replace(gateway);
            changed.push("voice");
        }
        if let (Some(slot), Some(mailer)) = (&self.mailer, mailer) {
            *slot.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(mailer);
            changed.push("smtp");
        }
        tracing::info!(
            version,
            changed = %changed.join(","),
            "stored settings applied"
        );
        self.applied = config;
    }
}
