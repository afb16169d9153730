//! SMTP submission with lettre over rustls: STARTTLS (RFC 3207), implicit TLS (RFC 8314)
//! or, to a loopback relay only, plain text.

use crate::{one_line, NotifyError, SecretText};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which must succeed (RFC 3207; port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314 §3.3; port 465).
    Tls,
    /// No encryption: only to a relay on the loopback interface.
    None,
}

/// `[smtp]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The SMTP server; empty turns e-mail off.
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Login name; empty sends without authentication.
    pub user: String,
    /// File holding the password (trailing newline ignored).
    pub password_file: PathBuf,
    /// The password as a stored secret setting; when set it is used instead of the file.
    #[serde(skip_serializing_if = "SecretText::is_empty")]
    pub password: SecretText,
    /// The sender, e.g. `MFA <mfa@example.org>`.
    pub from: String,
    /// Extra trusted CA certificates (PEM), for a server with an internal CA.
    pub ca_file: PathBuf,
    /// Limit for connecting and for each SMTP command.
    pub connect_timeout_seconds: u64,
    /// Limit for one whole delivery.
    pub send_timeout_seconds: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: Security::Starttls,
            user: String::new(),
            password_file: PathBuf::new(),
            password: SecretText::default(),
            from: String::new(),
            ca_file: PathBuf::new(),
            connect_timeout_seconds: 10,
            send_timeout_seconds: 60,
        }
    }
}

impl SmtpConfig {
    pub fn enabled(&self) -> bool {
        !self.host.is_empty()
    }
}

/// `localhost`, 127.0.0.0/8 or ::1 (bracketed or not).
pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Sends mails through one SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    send_timeout: Duration,
    host: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the configuration and reads the password and CA files. Connects nothing.
    pub fn new(config: &SmtpConfig) -> Result<Self, NotifyError> {
        if config.host.is_empty() {
            return Err(NotifyError::Config(
                "smtp.host is empty; set it to your mail server to send e-mail".into(),
            ));
        }
        if config.security == Security::None && !is_loopback(&config.host) {
            return Err(NotifyError::Config(format!(
                "smtp.security = \"none\" is allowed only to a loopback host, not '{}'; use \"starttls\" or \"tls\"",
                config.host
            )));
        }
        let from: Mailbox = config.from.parse().map_err(|_| {
            NotifyError::Config(format!(
                "smtp.from '{}' is not an e-mail address; write it as \"MFA <mfa@example.org>\"",
                config.from
            ))
        })?;
        let tls = match config.security {
            Security::None => Tls::None,
            Security::Starttls => Tls::Required(tls_parameters(config)?),
            Security::Tls => Tls::Wrapper(tls_parameters(config)?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
                .port(config.port)
                .tls(tls)
                .timeout(Some(Duration::from_secs(
                    config.connect_timeout_seconds.max(1),
                )));
        if !config.user.is_empty() {
            let password = read_password(config)?;
            builder =
                builder.credentials(Credentials::new(config.user.clone(), password.to_string()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            send_timeout: Duration::from_secs(config.send_timeout_seconds.max(1)),
            host: config.host.clone(),
        })
    }

    /// How long one delivery may take at most.
    pub fn send_timeout(&self) -> Duration {
        self.send_timeout
    }

    /// Sends one plain-text mail.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), NotifyError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| NotifyError::Address(to.to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| NotifyError::Smtp(one_line(e)))?;
        match tokio::time::timeout(self.send_timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(NotifyError::Smtp(format!("{}: {}", self.host, one_line(e)))),
            Err(_) => Err(NotifyError::Smtp(format!(
                "{}: no answer within {} s",
                self.host,
                self.send_timeout.as_secs()
            ))),
        }
    }
}

fn read_password(config: &SmtpConfig) -> Result<Zeroizing<String>, NotifyError> {
    if !config.password.is_empty() {
        return Ok(Zeroizing::new(config.password.0.clone()));
    }
    if config.password_file.as_os_str().is_empty() {
        return Err(NotifyError::Config(
            "smtp.user is set but smtp.password_file is not; name a file holding the password"
                .into(),
        ));
    }
    let text = std::fs::read_to_string(&config.password_file).map_err(|e| {
        NotifyError::Config(format!(
            "cannot read smtp.password_file {}: {e}",
            config.password_file.display()
        ))
    })?;
    Ok(Zeroizing::new(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, NotifyError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if !config.ca_file.as_os_str().is_empty() {
        let pem = std::fs::read_to_string(&config.ca_file).map_err(|e| {
            NotifyError::Config(format!(
                "cannot read smtp.ca_file {}: {e}",
                config.ca_file.display()
            ))
        })?;
        let end = "-----END CERTIFICATE-----";
        let mut found = false;
        for block in pem.split_inclusive(end).filter(|b| b.contains(end)) {
            let cert = Certificate::from_pem(block.trim_start().as_bytes()).map_err(|e| {
                NotifyError::Config(format!(
                    "smtp.ca_file {} holds a certificate that cannot be read: {}",
                    config.ca_file.display(),
                    one_line(e)
                ))
            })?;
            builder = builder.add_root_certificate(cert);
            found = true;
        }
        if !found {
            return Err(NotifyError::Config(format!(
                "smtp.ca_file {} holds no PEM certificate",
                config.ca_file.display()
            )));
        }
    }
    builder
        .build_rustls()
        .map_err(|e| NotifyError::Config(format!("cannot set up TLS for SMTP: {}", one_line(e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SmtpConfig {
        SmtpConfig {
            host: "mail.example.org".into(),
            from: "MFA <mfa@example.org>".into(),
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn plain_smtp_is_refused_to_a_remote_host() {
        let mut c = config();
        c.security = Security::None;
        let err = Mailer::new(&c).unwrap_err().to_string();
        assert!(
            err.contains("loopback") && err.contains("mail.example.org"),
            "{err}"
        );
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            c.host = host.into();
            Mailer::new(&c).unwrap();
        }
    }

    #[test]
    fn a_bad_sender_or_missing_password_file_is_named() {
        let mut c = config();
        c.from = "not an address".into();
        let err = Mailer::new(&c).unwrap_err().to_string();
        assert!(err.contains("smtp.from"), "{err}");
        let mut c = config();
        c.user = "mfa".into();
        let err = Mailer::new(&c).unwrap_err().to_string();
        assert!(err.contains("smtp.password_file"), "{err}");
    }
}
