//! From a user to a queued mail: the placeholders filled in, the template chosen.

use crate::templates::{method_name, MailContext, Templates};
use crate::NotifyError;
use mfad_core::model::User;
use mfad_core::outbox::{EmailKind, NewEmail};
use mfad_core::store::PendingPhone;
use zeroize::Zeroizing;

/// What a mail needs besides the user.
#[derive(Clone, Debug, Default)]
pub struct MailSettings {
    pub language: String,
    pub portal_url: String,
}

/// Renders the `kind` mail for `user` (with `pin` as the initial PIN, if any). Automatic
/// welcome mails carry the key `welcome:<user id>`, so each user gets one once.
pub fn compose(
    templates: &Templates,
    settings: &MailSettings,
    user: &User,
    kind: EmailKind,
    pin: Option<&str>,
    once: bool,
) -> Result<NewEmail, NotifyError> {
    if user.email.is_empty() {
        return Err(NotifyError::Config(format!(
            "user '{}' has no e-mail address; set one with 'mfad user update {} --email ADDRESS'",
            user.username, user.username
        )));
    }
    let context = MailContext {
        username: user.username.clone(),
        given_name: user.given_name.clone(),
        surname: user.surname.clone(),
        email: user.email.clone(),
        phone: user.phone.clone(),
        pin: pin.unwrap_or_default().to_owned(),
        method: user.method.as_str().into(),
        method_name: method_name(user.method).into(),
        portal_url: settings.portal_url.clone(),
        ..MailContext::default()
    };
    let rendered = templates.render(kind, user.method, &settings.language, &context)?;
    Ok(NewEmail {
        user_id: Some(user.id),
        recipient: user.email.clone(),
        kind,
        subject: rendered.subject,
        body: Zeroizing::new(rendered.body),
        once_key: once.then(|| format!("{kind}:{}", user.id)),
    })
}

/// The templates and mail settings in force, through which the core's mail service
/// renders what it queues.
pub struct TemplateComposer {
    pub templates: Templates,
    pub settings: MailSettings,
}

impl mfad_core::service::Composer for TemplateComposer {
    fn compose(
        &self,
        user: &User,
        kind: EmailKind,
        pin: Option<&str>,
        once: bool,
    ) -> Result<NewEmail, Box<dyn std::error::Error + Send + Sync>> {
        Ok(compose(
            &self.templates,
            &self.settings,
            user,
            kind,
            pin,
            once,
        )?)
    }

    fn phone_change(
        &self,
        user: &User,
        change: &PendingPhone,
    ) -> Result<NewEmail, Box<dyn std::error::Error + Send + Sync>> {
        Ok(compose_phone_change(
            &self.templates,
            &self.settings,
            user,
            change,
        )?)
    }
}

/// Renders the notice that a directory sync holds `change` of `user`'s phone for
/// approval. It goes to the address on record when the change was held, once per user
/// and new number (every later sync that still holds it asks again).
pub fn compose_phone_change(
    templates: &Templates,
    settings: &MailSettings,
    user: &User,
    change: &PendingPhone,
) -> Result<NewEmail, NotifyError> {
    let recipient = if change.email.is_empty() {
        &user.email
    } else {
        &change.email
    };
    if recipient.is_empty() {
        return Err(NotifyError::Config(format!(
            "user '{}' has no e-mail address for the notice of the held phone change",
            user.username
        )));
    }
    let context = MailContext {
        username: user.username.clone(),
        given_name: user.given_name.clone(),
        surname: user.surname.clone(),
        email: recipient.clone(),
        phone: change.old_phone.clone(),
        new_phone: change.new_phone.clone(),
        method: user.method.as_str().into(),
        method_name: method_name(user.method).into(),
        portal_url: settings.portal_url.clone(),
        ..MailContext::default()
    };
    let kind = EmailKind::PhoneChange;
    let rendered = templates.render(kind, user.method, &settings.language, &context)?;
    Ok(NewEmail {
        user_id: Some(user.id),
        recipient: recipient.clone(),
        kind,
        subject: rendered.subject,
        body: Zeroizing::new(rendered.body),
        once_key: Some(format!("{kind}:{}:{}", user.id, change.new_phone)),
    })
}
