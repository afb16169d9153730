//! E-mail templates: the shipped English texts, operator overrides from a directory, and
//! checks at load time so a broken template is reported before any mail is due.
//!
//! A template is named `<kind>-<method>.<language>.txt` (`welcome-sms.de.txt`). Its first
//! line is `Subject: ...`, then a blank line, then the body; both are minijinja templates
//! with the placeholders listed in [`MailContext`].

use crate::NotifyError;
use mfad_core::model::Method;
use mfad_core::outbox::EmailKind;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The shipped templates, `(file name, text)`.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "welcome-app.en.txt",
        include_str!("../templates/welcome-app.en.txt"),
    ),
    (
        "welcome-token.en.txt",
        include_str!("../templates/welcome-token.en.txt"),
    ),
    (
        "welcome-sms.en.txt",
        include_str!("../templates/welcome-sms.en.txt"),
    ),
    (
        "welcome-call.en.txt",
        include_str!("../templates/welcome-call.en.txt"),
    ),
    (
        "welcome-push.en.txt",
        include_str!("../templates/welcome-push.en.txt"),
    ),
    (
        "update-app.en.txt",
        include_str!("../templates/update-app.en.txt"),
    ),
    (
        "update-token.en.txt",
        include_str!("../templates/update-token.en.txt"),
    ),
    (
        "update-sms.en.txt",
        include_str!("../templates/update-sms.en.txt"),
    ),
    (
        "update-call.en.txt",
        include_str!("../templates/update-call.en.txt"),
    ),
    (
        "update-push.en.txt",
        include_str!("../templates/update-push.en.txt"),
    ),
    (
        "fraud-alert.en.txt",
        include_str!("../templates/fraud-alert.en.txt"),
    ),
    (
        "phone-change.en.txt",
        include_str!("../templates/phone-change.en.txt"),
    ),
];

/// The language every shipped template exists in, used when a user's is missing.
pub const FALLBACK_LANGUAGE: &str = "en";

/// What a template can use. Every field is always defined (empty when unknown), so a
/// template may test any of them with `{% if ... %}`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MailContext {
    pub username: String,
    pub given_name: String,
    pub surname: String,
    pub email: String,
    /// The default phone, E.164.
    pub phone: String,
    /// The initial PIN, when one was generated for this mail.
    pub pin: String,
    /// `app`, `token`, `sms`, `call` or `push`.
    pub method: String,
    /// The method as a person reads it ("authenticator app").
    pub method_name: String,
    /// The user portal, from `[portal] url`.
    pub portal_url: String,
    /// Fraud alerts: when the report was made (RFC 3339, UTC).
    pub time: String,
    /// Fraud alerts: whether the user was blocked.
    pub blocked: bool,
    /// Phone change notices: the number the directory holds now (`phone` is the one
    /// on record).
    pub new_phone: String,
}

impl MailContext {
    fn sample() -> Self {
        Self {
            username: "jdoe".into(),
            given_name: "Jane".into(),
            surname: "Doe".into(),
            email: "jdoe@example.org".into(),
            phone: "+14255550100".into(),
            pin: "2468".into(),
            method: "app".into(),
            method_name: method_name(Method::App).into(),
            portal_url: "https://mfa.example.org/portal".into(),
            time: "2026-01-01T00:00:00Z".into(),
            blocked: true,
            new_phone: "+14255550199".into(),
        }
    }
}

pub fn method_name(method: Method) -> &'static str {
    match method {
        Method::App => "authenticator app",
        Method::Token => "hardware token",
        Method::Sms => "text message (SMS)",
        Method::Call => "phone call",
        Method::Push => "mobile app notification",
    }
}

/// A rendered mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// The loaded, checked templates.
pub struct Templates {
    env: Environment<'static>,
    names: Vec<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.names)
            .finish()
    }
}

fn file_name(kind: EmailKind, method: Method, language: &str) -> String {
    match kind {
        EmailKind::FraudAlert => format!("fraud-alert.{language}.txt"),
        EmailKind::PhoneChange => format!("phone-change.{language}.txt"),
        _ => format!("{kind}-{method}.{language}.txt"),
    }
}

fn unknown_name(name: &str) -> NotifyError {
    NotifyError::Config(format!(
        "template {name} has an unknown name; use <welcome|update>-<app|token|sms|call|push>.<language>.txt, fraud-alert.<language>.txt or phone-change.<language>.txt, e.g. welcome-sms.en.txt"
    ))
}

/// Whether `name` is `<welcome|update>-<method>.<language>.txt`,
/// `fraud-alert.<language>.txt` or `phone-change.<language>.txt`.
pub fn valid_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".txt") else {
        return false;
    };
    let Some((kind_method, language)) = stem.split_once('.') else {
        return false;
    };
    let language_ok = (2..=8).contains(&language.len())
        && language
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let kind_ok = kind_method == "fraud-alert"
        || kind_method == "phone-change"
        || ["welcome", "update"].iter().any(|kind| {
            Method::ALL
                .iter()
                .any(|m| kind_method == format!("{kind}-{}", m.as_str()))
        });
    language_ok && kind_ok
}

impl Templates {
    /// The shipped templates only.
    pub fn shipped() -> Result<Self, NotifyError> {
        Self::load(None)
    }

    /// The shipped templates with the operator's from `dir` (if given) replacing or
    /// adding to them. Every template is compiled and rendered once with sample values,
    /// so an error names the template and line now rather than at the first mail.
    pub fn load(dir: Option<&Path>) -> Result<Self, NotifyError> {
        Self::load_with(dir, &BTreeMap::new())
    }

    /// [`Templates::load`], then the operator's stored templates (`mfad template set`,
    /// file name to text) replacing or adding to those: stored beats directory beats
    /// shipped.
    pub fn load_with(
        dir: Option<&Path>,
        stored: &BTreeMap<String, String>,
    ) -> Result<Self, NotifyError> {
        let mut sources: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                NotifyError::Config(format!(
                    "cannot read the templates directory {}: {e}",
                    dir.display()
                ))
            })?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    NotifyError::Config(format!("cannot list {}: {e}", dir.display()))
                })?;
                let path = entry.path();
                if !path.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if !valid_name(&name) {
                    return Err(unknown_name(&path.display().to_string()));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    NotifyError::Config(format!("cannot read template {}: {e}", path.display()))
                })?;
                sources.insert(name, text);
            }
        }
        for (name, text) in stored {
            if !valid_name(name) {
                return Err(unknown_name(name));
            }
            sources.insert(name.clone(), text.clone());
        }
        let mut env = Environment::new();
        // Mails are plain text: nothing to escape. Strict: a misspelt placeholder is an
        // error at load time instead of an empty gap in a mail.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        for (name, text) in &sources {
            check_subject_line(name, text)?;
            env.add_template_owned(name.clone(), text.clone())
                .map_err(|e| template_error(name, &e))?;
        }
        let templates = Self {
            env,
            names: sources.keys().cloned().collect(),
        };
        let sample = MailContext::sample();
        let no_pin = MailContext {
            pin: String::new(),
            ..MailContext::sample()
        };
        for name in &templates.names {
            templates.render_named(name, &sample)?;
            templates.render_named(name, &no_pin)?;
        }
        Ok(templates)
    }

    /// The text of a loaded template.
    pub fn source(&self, name: &str) -> Option<String> {
        self.env
            .get_template(name)
            .ok()
            .map(|t| t.source().to_owned())
    }

    /// The names of all loaded templates.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Renders the `kind` mail for `method` in `language`, or in English when the
    /// operator has not provided that language.
    pub fn render(
        &self,
        kind: EmailKind,
        method: Method,
        language: &str,
        context: &MailContext,
    ) -> Result<Rendered, NotifyError> {
        let wanted = file_name(kind, method, language);
        let name = if self.names.contains(&wanted) {
            wanted
        } else {
            file_name(kind, method, FALLBACK_LANGUAGE)
        };
        self.render_named(&name, context)
    }

    fn render_named(&self, name: &str, context: &MailContext) -> Result<Rendered, NotifyError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|e| template_error(name, &e))?;
        let text = template
            .render(context)
            .map_err(|e| template_error(name, &e))?;
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix("Subject:")
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        // Header injection: a subject is one line (RFC 5322 §2.2).
        if subject.is_empty() || subject.contains(['\r', '\n']) {
            return Err(NotifyError::Template {
                name: name.to_owned(),
                line: 1,
                message: "the subject renders empty".into(),
            });
        }
        let body = rest.strip_prefix('\n').unwrap_or(rest).to_owned();
        Ok(Rendered { subject, body })
    }
}

fn check_subject_line(name: &str, text: &str) -> Result<(), NotifyError> {
    let mut lines = text.lines();
    let subject_ok = lines.next().is_some_and(|l| l.starts_with("Subject:"));
    if !subject_ok {
        return Err(NotifyError::Template {
            name: name.to_owned(),
            line: 1,
            message: "the first line must be 'Subject: ...'".into(),
        });
    }
    if lines.next().is_some_and(|l| !l.trim().is_empty()) {
        return Err(NotifyError::Template {
            name: name.to_owned(),
            line: 2,
            message: "a blank line must follow the subject".into(),
        });
    }
    Ok(())
}

fn template_error(name: &str, e: &minijinja::Error) -> NotifyError {
    let message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    NotifyError::Template {
        name: e.name().unwrap_or(name).to_owned(),
        line: e.line().unwrap_or(0),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(method: Method) -> MailContext {
        MailContext {
            username: "alice".into(),
            given_name: "Alice".into(),
            surname: "Liddell".into(),
            email: "alice@example.org".into(),
            phone: "+14255550100".into(),
            pin: String::new(),
            method: method.as_str().into(),
            method_name: method_name(method).into(),
            portal_url: "https://mfa.example.org/portal".into(),
            ..MailContext::default()
        }
    }

    #[test]
    fn every_method_has_a_welcome_and_an_update_mail() {
        let templates = Templates::shipped().unwrap();
        for method in Method::ALL {
            for kind in [EmailKind::Welcome, EmailKind::Update] {
                let mail = templates
                    .render(kind, method, "en", &context(method))
                    .unwrap();
                assert!(!mail.subject.is_empty(), "{kind}-{method}");
                assert!(
                    mail.body.contains("Alice"),
                    "{kind}-{method}: {}",
                    mail.body
                );
                assert!(mail.body.contains("alice"), "{kind}-{method}");
                assert!(!mail.body.contains("{{"), "{kind}-{method}: {}", mail.body);
            }
        }
    }

    #[test]
    fn the_fraud_alert_names_the_user_and_the_block() {
        let templates = Templates::shipped().unwrap();
        let mut ctx = context(Method::Call);
        ctx.time = "2026-11-25T14:00:00Z".into();
        ctx.blocked = true;
        let mail = templates
            .render(EmailKind::FraudAlert, Method::Call, "en", &ctx)
            .unwrap();
        assert_eq!(mail.subject, "Fraud reported by alice");
        assert!(mail.body.contains("phone call"), "{}", mail.body);
        assert!(mail.body.contains("2026-11-25T14:00:00Z"), "{}", mail.body);
        assert!(
            mail.body.contains("mfad user unblock alice"),
            "{}",
            mail.body
        );
    }

    #[test]
    fn the_phone_change_notice_names_both_numbers_and_the_help_desk() {
        let templates = Templates::shipped().unwrap();
        let mut ctx = context(Method::Sms);
        ctx.new_phone = "+14255550199".into();
        let mail = templates
            .render(EmailKind::PhoneChange, Method::Sms, "en", &ctx)
            .unwrap();
        assert!(mail.subject.contains("phone number"), "{}", mail.subject);
        assert!(mail.body.contains("+14255550199"), "{}", mail.body);
        assert!(
            mail.body.contains("instead of +14255550100"),
            "{}",
            mail.body
        );
        assert!(mail.body.contains("help desk"), "{}", mail.body);
        assert!(valid_name("phone-change.de.txt"));
    }

    #[test]
    fn the_initial_pin_appears_only_when_there_is_one() {
        let templates = Templates::shipped().unwrap();
        let mut with_pin = context(Method::Sms);
        with_pin.pin = "8642".into();
        let mail = templates
            .render(EmailKind::Welcome, Method::Sms, "en", &with_pin)
            .unwrap();
        assert!(
            mail.body.contains("Your initial PIN is 8642"),
            "{}",
            mail.body
        );
        assert!(mail.body.contains("+14255550100"));
        let mail = templates
            .render(EmailKind::Welcome, Method::Sms, "en", &context(Method::Sms))
            .unwrap();
        assert!(!mail.body.contains("initial PIN"), "{}", mail.body);
    }

    #[test]
    fn an_operator_template_replaces_the_shipped_one_and_adds_languages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("welcome-app.en.txt"),
            "Subject: Hi {{ username }}\n\nScan at {{ portal_url }}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("welcome-app.de.txt"),
            "Subject: Hallo {{ given_name }}\n\nWillkommen {{ surname }}\n",
        )
        .unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let ctx = context(Method::App);
        let en = templates
            .render(EmailKind::Welcome, Method::App, "en", &ctx)
            .unwrap();
        assert_eq!(en.subject, "Hi alice");
        assert_eq!(en.body, "Scan at https://mfa.example.org/portal\n");
        let de = templates
            .render(EmailKind::Welcome, Method::App, "de", &ctx)
            .unwrap();
        assert_eq!(de.subject, "Hallo Alice");
        let fallback = templates
            .render(EmailKind::Welcome, Method::Sms, "de", &ctx)
            .unwrap();
        assert!(fallback.subject.contains("SMS"), "{}", fallback.subject);
    }

    #[test]
    fn a_broken_template_is_reported_at_load_with_its_name_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("welcome-sms.en.txt"),
            "Subject: Codes\n\nline three\nline four\nHello {{ username + }}\n",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("welcome-sms.en.txt"), "{err}");
        assert!(err.contains("line 5"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_misspelt_placeholder_is_reported_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("welcome-call.en.txt"),
            "Subject: Calls\n\nHello {{ given_name }}\nCall {{ phnoe }}\n",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("welcome-call.en.txt"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn a_template_without_a_subject_or_with_an_unknown_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("welcome-app.en.txt"), "Hello\n").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("Subject:"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("welcome-fax.en.txt"), "Subject: x\n\ny\n").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("welcome-fax.en.txt") && err.contains("unknown name"),
            "{err}"
        );
    }
}
