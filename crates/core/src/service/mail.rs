//! Mails to users that operator actions and directory syncs queue (welcome, update,
//! held phone changes): who gets one, with which initial PIN, and queuing it once. Rendering belongs to the
//! templates ([`Composer`]); delivery to the outbox worker.

use super::pins::Pins;
use super::users::Updated;
use super::{Error, Result};
use crate::clock::Clock;
use crate::directory::{initial_pin, InitialPin};
use crate::model::User;
use crate::outbox::{Email, EmailId, EmailKind, NewEmail};
use crate::store::{PendingPhone, Store};
use std::collections::HashSet;
use std::sync::Arc;

/// Renders a mail from the operator's templates.
pub trait Composer: Send + Sync {
    /// The `kind` mail for `user`, with `pin` as their initial PIN if any; with `once`
    /// it carries the key that keeps it from being queued twice.
    fn compose(
        &self,
        user: &User,
        kind: EmailKind,
        pin: Option<&str>,
        once: bool,
    ) -> std::result::Result<NewEmail, Box<dyn std::error::Error + Send + Sync>>;

    /// The notice to `user` that a directory sync holds `change` of their phone.
    fn phone_change(
        &self,
        user: &User,
        change: &PendingPhone,
    ) -> std::result::Result<NewEmail, Box<dyn std::error::Error + Send + Sync>>;
}

/// The mail settings the rules read (`[smtp]`, `[email]`, `[directory]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MailRules {
    /// Whether an SMTP server is configured.
    pub smtp: bool,
    /// `[email] send_to_users`: new users get a welcome mail.
    pub send_to_users: bool,
    /// `[email] send_updates`: users whose phone or method changed are told.
    pub send_updates: bool,
    /// `[directory] generate_pins`: PIN users a sync adds get an initial PIN by mail.
    pub generate_pins: bool,
}

impl MailRules {
    /// Fails unless mail can be sent at all.
    pub fn ensure_configured(&self) -> Result<()> {
        if self.smtp {
            Ok(())
        } else {
            Err(Error::MailNotConfigured)
        }
    }

    /// Whether a new user (or one given a generated PIN) hears about it by mail, rather
    /// than from the operator.
    pub fn welcomes(&self, user: &User) -> bool {
        self.send_to_users && !user.email.is_empty()
    }

    /// Whether the users whose phone change a sync holds are told: a security notice,
    /// so whenever mail can be sent.
    pub fn tells_phone_changes(&self) -> bool {
        self.smtp
    }

    /// Whether an update tells the user about it by mail.
    pub fn tells_update(&self, updated: &Updated) -> bool {
        updated.second_factor_changed() && self.send_updates && !updated.after.email.is_empty()
    }
}

/// What welcoming the users a directory sync added did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Welcomed {
    /// Welcome mails queued.
    pub queued: usize,
    /// Of those, how many hold a generated initial PIN.
    pub pins: usize,
    /// PIN users who got no initial PIN, as `username: why`.
    pub withheld: Vec<String>,
}

/// PIN users without an initial PIN named in the summary; the rest are counted.
const WITHHELD_SHOWN: usize = 20;

impl std::fmt::Display for Welcomed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.queued > 0 {
            write!(f, "queued the welcome e-mail for {} new users", self.queued)?;
            if self.pins > 0 {
                write!(f, " ({} with an initial PIN)", self.pins)?;
            }
        }
        if !self.withheld.is_empty() {
            if self.queued > 0 {
                writeln!(f)?;
            }
            let shown: Vec<&str> = self
                .withheld
                .iter()
                .take(WITHHELD_SHOWN)
                .map(String::as_str)
                .collect();
            let more = self.withheld.len().saturating_sub(WITHHELD_SHOWN);
            write!(
                f,
                "no initial PIN for {} new PIN users ({}{}); once they can get e-mail, run 'mfad user set-pin USER --generate'",
                self.withheld.len(),
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            )?;
        }
        Ok(())
    }
}

impl Welcomed {
    pub fn is_empty(&self) -> bool {
        self.queued == 0 && self.withheld.is_empty()
    }
}

/// The mail service: queues mails; the outbox worker delivers them.
pub struct Mails {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rules: MailRules,
}

impl Mails {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, rules: MailRules) -> Self {
        Self {
            store,
            clock,
            rules,
        }
    }

    pub fn rules(&self) -> &MailRules {
        &self.rules
    }

    /// Renders and queues the `kind` mail for `user`. With `once`, a mail of this kind
    /// queued for the user before is not queued again: `None`.
    pub async fn queue(
        &self,
        composer: &dyn Composer,
        user: &User,
        kind: EmailKind,
        pin: Option<&str>,
        once: bool,
    ) -> Result<Option<(NewEmail, Email)>> {
        self.rules.ensure_configured()?;
        let mail = composer
            .compose(user, kind, pin, once)
            .map_err(Error::Compose)?;
        let queued = self.store.queue_email(&mail, self.clock.now()).await?;
        Ok(queued.map(|queued| (mail, queued)))
    }

    /// The newest `limit` mails, newest first, bodies left empty.
    pub async fn list(&self, limit: usize) -> Result<Vec<Email>> {
        Ok(self.store.list_emails(limit).await?)
    }

    /// A mail queued a moment ago, as it stands now (sent, or queued with the error of
    /// its last attempt); `None` once it is no longer among the newest.
    pub async fn status(&self, id: EmailId) -> Result<Option<Email>> {
        const RECENT: usize = 200;
        let recent = self.store.list_emails(RECENT).await?;
        Ok(recent.into_iter().find(|e| e.id == id))
    }

    /// Tells each user whose phone change a directory sync holds, at the address on
    /// record, that their number is about to change and to call the help desk if they
    /// did not do it: once per user and new number, whichever node or command asks
    /// first. A notice that cannot be rendered is logged and left out. Returns how many
    /// were queued.
    pub async fn notify_phone_changes(
        &self,
        held: &[PendingPhone],
        composer: &dyn Composer,
    ) -> Result<usize> {
        if !self.rules.tells_phone_changes() {
            return Ok(0);
        }
        let mut queued = 0;
        for change in held {
            let Some(user) = self.store.user_by_id(change.user_id).await? else {
                continue;
            };
            let mail = match composer.phone_change(&user, change) {
                Ok(mail) => mail,
                Err(err) => {
                    tracing::warn!("no notice of the held phone change: {err}");
                    continue;
                }
            };
            if self
                .store
                .queue_email(&mail, self.clock.now())
                .await?
                .is_some()
            {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Welcomes the users a directory import or sync added (`added_ids`: their
    /// directory IDs): with `send_to_users` each with an address gets the welcome mail
    /// once, as a user an operator adds does; with `generate_pins` each PIN user it
    /// reaches gets a generated initial PIN in it, marked "change required" (a PIN
    /// that reaches nobody is withheld: it would only lock the user out). `composer` is
    /// needed only with `send_to_users`.
    pub async fn welcome_added(
        &self,
        added_ids: &[String],
        pins: &Pins,
        composer: Option<&dyn Composer>,
    ) -> Result<Welcomed> {
        let (mail_on, generate) = (self.rules.send_to_users, self.rules.generate_pins);
        let mut welcomed = Welcomed::default();
        if added_ids.is_empty() || !(mail_on || generate) {
            return Ok(welcomed);
        }
        let ids: HashSet<&str> = added_ids.iter().map(String::as_str).collect();
        let added: Vec<User> = self
            .store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.directory_id.as_deref().is_some_and(|id| ids.contains(id)))
            .collect();
        for user in &added {
            let pin = match initial_pin(user, mail_on) {
                InitialPin::Generate if generate => Some(pins.generate(user, true).await?),
                InitialPin::Withheld(why) if generate => {
                    welcomed.withheld.push(format!("{}: {why}", user.username));
                    None
                }
                _ => None,
            };
            let Some(composer) = composer.filter(|_| mail_on) else {
                continue;
            };
            if user.email.is_empty() {
                continue;
            }
            let mail = composer
                .compose(
                    user,
                    EmailKind::Welcome,
                    pin.as_deref().map(String::as_str),
                    true,
                )
                .map_err(Error::Compose)?;
            if self
                .store
                .queue_email(&mail, self.clock.now())
                .await?
                .is_some()
            {
                welcomed.queued += 1;
                welcomed.pins += usize::from(pin.is_some());
            }
        }
        Ok(welcomed)
    }
}
