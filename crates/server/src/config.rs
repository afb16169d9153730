//! Configuration: built-in defaults, then a TOML file, then `MFAD__SECTION__KEY` variables.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use mfad_core::outbox::RetryPolicy;
use mfad_core::policy::Policy;
use mfad_directory::DirectoryConfig;
use mfad_notify::{SmsConfig, SmtpConfig, VoiceConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where defaults keep their data when no config names a place.
pub const DEFAULT_DATA_DIR: &str = "mfad-data";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub radius: RadiusConfig,
    pub policy: Policy,
    pub audit: AuditConfig,
    /// Active Directory / LDAP: import, sync and first-factor binds. Off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryConfig>,
    pub smtp: SmtpConfig,
    pub email: EmailConfig,
    pub portal: PortalConfig,
    pub sms: SmsConfig,
    pub voice: VoiceConfig,
    /// The HTTP front-end: listeners, TLS, limits, `public_url`.
    pub http: mfad_http::HttpConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// This node's name in audit records; the host name when empty.
    pub name: String,
    /// The issuer shown by authenticator apps for new tokens.
    pub issuer: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            issuer: "mfad".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH`, or `postgres://USER@HOST/DATABASE` for several nodes.
    pub url: String,
    /// The AES-256-GCM key for secrets at rest; created (mode 0600) when missing.
    pub key_file: PathBuf,
    /// SQLite `synchronous`: `full` (every commit reaches the disk) or `normal`.
    pub synchronous: String,
    /// PostgreSQL: most connections this node opens.
    pub pool_size: u32,
    /// PostgreSQL: deadline of one store call; past it the request is rejected.
    pub timeout_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: format!("sqlite://{DEFAULT_DATA_DIR}/mfad.db"),
            key_file: Path::new(DEFAULT_DATA_DIR).join("mfad.key"),
            synchronous: "full".into(),
            pool_size: 16,
            timeout_ms: 2000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiusConfig {
    pub enabled: bool,
    /// One address; port 0 picks a free port (the chosen address is logged).
    pub listen: String,
    /// How long after its request an Access-Reject is sent, to slow down guessing
    /// (FreeRADIUS' `reject_delay`): the time spent deciding counts towards it, so every
    /// reject takes the same time whatever its reason; 0 sends it at once.
    pub reject_delay_ms: u64,
    /// The servers `first_factor = "radius"` clients are forwarded to, in failover order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetConfig>,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "0.0.0.0:1812".into(),
            reject_delay_ms: 1000,
            targets: Vec::new(),
        }
    }
}

/// One target RADIUS server (`[[radius.targets]]`), e.g. NPS checking AD passwords.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// What clients name it by (`mfad client add ... --targets NAME`) and the log shows.
    pub name: String,
    /// `host:port`, e.g. `"10.0.0.5:1812"` or `"nps1.example.org:1812"`.
    pub address: String,
    /// The shared secret with the target; prefer `secret_file`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// A file holding the shared secret (a trailing newline is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// How long to wait for a reply before retransmitting, then failing over.
    #[serde(default = "TargetConfig::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retransmissions to this target before the next one is tried.
    #[serde(default = "TargetConfig::default_retries")]
    pub retries: u32,
    /// Discard replies without Message-Authenticator (BlastRADIUS, CVE-2024-3596).
    #[serde(default = "TargetConfig::default_require_message_authenticator")]
    pub require_message_authenticator: bool,
    /// Once this target did not answer, how long it is tried after the others.
    #[serde(default = "TargetConfig::default_hold_down_ms")]
    pub hold_down_ms: u64,
}

impl std::fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetConfig")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("secret_file", &self.secret_file)
            .field("timeout_ms", &self.timeout_ms)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl TargetConfig {
    fn default_timeout_ms() -> u64 {
        1000
    }
    fn default_retries() -> u32 {
        1
    }
    fn default_require_message_authenticator() -> bool {
        true
    }
    fn default_hold_down_ms() -> u64 {
        30_000
    }

    fn validate(&self) -> anyhow::Result<()> {
        let name = &self.name;
        if name.is_empty() || name.contains(',') || name.contains(char::is_whitespace) {
            bail!("invalid configuration: radius.targets name '{name}' must be non-empty, without commas or spaces");
        }
        let port_ok = self.address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !port_ok {
            bail!("invalid configuration: radius.targets '{name}' address '{}' is not host:port such as \"10.0.0.5:1812\"", self.address);
        }
        match (self.secret.is_empty(), &self.secret_file) {
            (true, None) => bail!("invalid configuration: radius.targets '{name}' has no secret; set secret_file (or secret)"),
            (false, Some(_)) => bail!("invalid configuration: radius.targets '{name}' has both secret and secret_file; keep one"),
            _ => {}
        }
        if !(50..=60_000).contains(&self.timeout_ms) {
            bail!("invalid configuration: radius.targets '{name}' timeout_ms must be between 50 and 60000");
        }
        if self.retries > 10 {
            bail!("invalid configuration: radius.targets '{name}' retries must be at most 10");
        }
        Ok(())
    }

    /// The shared secret, from `secret` or `secret_file`.
    pub fn read_secret(&self) -> anyhow::Result<String> {
        let secret = match &self.secret_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| {
                    format!(
                        "cannot read the secret_file of radius target '{}' ({})",
                        self.name,
                        path.display()
                    )
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            None => self.secret.clone(),
        };
        if secret.is_empty() {
            bail!("the shared secret of radius target '{}' is empty; put a random secret of at least 16 characters in its secret_file", self.name);
        }
        Ok(secret)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Records older than this are purged automatically while `mfad serve` runs.
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 90 }
    }
}

/// `[email]`: what mfad mails to users, and how failed deliveries are retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Users created by the CLI (or a directory import) get the welcome mail for their
    /// method once; a generated initial PIN goes into it.
    pub send_to_users: bool,
    /// Mail users when their phone or method changes.
    pub send_updates: bool,
    /// Language of the templates to use (`en` is shipped; others come from `templates_dir`).
    pub language: String,
    /// Operator templates that replace or add to the shipped ones; empty: shipped only.
    pub templates_dir: PathBuf,
    /// How often `mfad serve` looks for mails due.
    pub poll_seconds: u64,
    /// Operators mailed about every fraud report.
    pub fraud_alerts_to: Vec<String>,
    pub retry: RetryPolicy,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            send_to_users: false,
            send_updates: false,
            language: "en".into(),
            templates_dir: PathBuf::new(),
            poll_seconds: 10,
            fraud_alerts_to: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }
}

/// `[portal]`: the user portal the mails link to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    pub url: String,
}

/// The configuration as read from the built-in defaults, the file and the environment,
/// before the stored settings are laid over it. Kept by `mfad serve`, which lays the
/// stored settings over it again whenever they change.
#[derive(Clone, Debug)]
pub struct Layers {
    figment: Figment,
}

/// The stored settings as a figment provider, so an error names them as the source.
struct Stored<'a>(&'a [(String, toml::Value)]);

impl figment::Provider for Stored<'_> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("stored settings")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut figment = Figment::new();
        for (key, value) in self.0 {
            figment = figment.merge(Serialized::default(key, value));
        }
        figment.data()
    }
}

impl Layers {
    /// File and environment only, checked.
    pub fn base(&self) -> anyhow::Result<Config> {
        self.with(&[])
    }

    /// With `settings` (dotted key, value) laid over the file and the environment, checked.
    pub fn with(&self, settings: &[(String, toml::Value)]) -> anyhow::Result<Config> {
        let mut figment = self.figment.clone();
        if !settings.is_empty() {
            figment = figment.merge(Stored(settings));
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!(describe(&e)))?;
        if let Some(seconds) = config.voice.timeout_seconds {
            // The older key, from when only calls waited out of band.
            tracing::warn!("voice.timeout_seconds is replaced by policy.out_of_band_timeout_seconds; using {seconds} for it");
            config.policy.out_of_band_timeout_seconds = seconds;
        }
        config.validate()?;
        Ok(config)
    }

    /// File and environment only, not checked: enough to find the store, whose settings
    /// may be what makes the configuration complete (a gateway credential).
    pub fn unchecked(&self) -> anyhow::Result<Config> {
        self.figment
            .extract()
            .map_err(|e| anyhow::anyhow!(describe(&e)))
    }
}

/// Loads the configuration: `explicit` (from `--config` or `$MFAD_CONFIG`), else
/// `./mfad.toml` when present, else defaults; the environment overlay applies in every case.
#[cfg(test)]
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
    layers(explicit)?.base()
}

/// Reads the layers [`load`] describes, without stored settings.
pub fn layers(explicit: Option<&Path>) -> anyhow::Result<Layers> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    match explicit {
        Some(path) if !path.is_file() => {
            bail!(
                "config file {} does not exist; check --config or MFAD_CONFIG",
                path.display()
            )
        }
        Some(path) => figment = figment.merge(Toml::file_exact(path)),
        None if Path::new("mfad.toml").is_file() => {
            figment = figment.merge(Toml::file_exact("mfad.toml"))
        }
        None => {}
    }
    figment = figment.merge(Env::prefixed("MFAD__").split("__"));
    Ok(Layers { figment })
}

/// One line per problem, naming the key and where it came from.
fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_default();
            format!(
                "invalid configuration: {} (key '{key}'{}{source})",
                e.kind,
                if source.is_empty() { "" } else { " in " }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    fn validate(&self) -> anyhow::Result<()> {
        if self.radius.enabled {
            self.radius_listen()?;
        }
        if !matches!(self.store.synchronous.as_str(), "full" | "normal") {
            bail!(
                "invalid configuration: store.synchronous is '{}'; use 'full' or 'normal'",
                self.store.synchronous
            );
        }
        if (self.email.send_to_users || self.email.send_updates) && !self.smtp.enabled() {
            bail!(
                "invalid configuration: email.send_to_users or email.send_updates is on but smtp.host is empty; configure [smtp] or turn them off"
            );
        }
        if !self.email.fraud_alerts_to.is_empty() && !self.smtp.enabled() {
            bail!(
                "invalid configuration: email.fraud_alerts_to is set but smtp.host is empty; configure [smtp] or empty the list"
            );
        }
        if self.smtp.enabled() {
            mfad_notify::Mailer::new(&self.smtp)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        }
        self.refuse_retired_keys()?;
        self.http
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        mfad_notify::TwilioVoice::new(&self.voice)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        if self.voice.gateway != mfad_notify::VoiceKind::None {
            self.require_webhooks("voice.gateway = \"twilio\"")?;
        }
        mfad_notify::SmsGateway::new(&self.sms)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        mfad_core::phone::normalise("+14255550100", &self.policy.default_country_code)
            .and_then(|_| {
                mfad_core::phone::normalise("4255550100", &self.policy.default_country_code)
            })
            .map_err(|e| {
                anyhow::anyhow!("invalid configuration: policy.default_country_code: {e}")
            })?;
        let sms = &self.policy.sms;
        if !(4..=10).contains(&sms.code_digits)
            || sms.code_seconds <= 0
            || sms.max_attempts == 0
            || sms.max_sends == 0
        {
            bail!("invalid configuration: policy.sms needs code_digits 4 to 10 and positive code_seconds, max_attempts and max_sends");
        }
        if !(1..=600).contains(&self.policy.out_of_band_timeout_seconds) {
            bail!("invalid configuration: policy.out_of_band_timeout_seconds must be between 1 and 600 (45, below the 60 s RADIUS clients usually wait, by default)");
        }
        if sms.mode == mfad_core::policy::SmsMode::TwoWay
            && self.sms.gateway != mfad_notify::GatewayKind::None
        {
            if self.sms.gateway == mfad_notify::GatewayKind::Http
                && self.sms.http.inbound_secret_file.as_os_str().is_empty()
            {
                bail!("invalid configuration: policy.sms.mode = \"two-way\" with sms.gateway = \"http\" needs sms.http.inbound_secret_file, the secret the gateway sends with the replies it posts to /sms/inbound/http");
            }
            if self.sms.gateway == mfad_notify::GatewayKind::Twilio
                && !self.sms.twilio.api_key_sid.is_empty()
            {
                bail!("invalid configuration: policy.sms.mode = \"two-way\" checks the signature of Twilio's inbound webhook with the account's auth token; leave sms.twilio.api_key_sid empty and set sms.twilio.auth_token_file");
            }
            self.require_webhooks("policy.sms.mode = \"two-way\"")?;
        }
        if self.email.poll_seconds == 0 {
            bail!("invalid configuration: email.poll_seconds must be at least 1");
        }
        if self.store.pool_size == 0 || self.store.pool_size > 1000 {
            bail!("invalid configuration: store.pool_size must be between 1 and 1000");
        }
        if !(100..=60_000).contains(&self.store.timeout_ms) {
            bail!("invalid configuration: store.timeout_ms must be between 100 and 60000");
        }
        if self.policy.max_failures == 0 || self.policy.max_failures > 100 {
            // NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts.
            bail!("invalid configuration: policy.max_failures must be between 1 and 100");
        }
        if let Some(directory) = &self.directory {
            directory.validate()?;
        }
        let mut names = std::collections::HashSet::new();
        for target in &self.radius.targets {
            target.validate()?;
            if !names.insert(target.name.as_str()) {
                bail!("invalid configuration: two radius.targets are named '{}'; give each a distinct name", target.name);
            }
        }
        Ok(())
    }

    /// The keys of the webhook listeners that the HTTP front-end replaced: refused, with
    /// the new way in one line.
    fn refuse_retired_keys(&self) -> anyhow::Result<()> {
        for (section, listen, public_url) in [
            ("voice", &self.voice.listen, &self.voice.public_url),
            ("sms", &self.sms.listen, &self.sms.public_url),
        ] {
            if listen.is_some() {
                bail!("invalid configuration: {section}.listen is no longer read; the {section} webhooks are served under /hooks/{section}/ by the [[http.listeners]] whose serve list includes \"webhooks\" (remove {section}.listen)");
            }
            if public_url.is_some() {
                bail!("invalid configuration: {section}.public_url is no longer read; set [http] public_url, the address the gateways reach the \"webhooks\" listener at (remove {section}.public_url)");
            }
        }
        Ok(())
    }

    /// Refuses `what` (a gateway that calls back) when its webhooks have nowhere to go:
    /// no listener serves `webhooks` and no `[http] public_url` points at another node.
    fn require_webhooks(&self, what: &str) -> anyhow::Result<()> {
        if self.http.public_url.is_empty() && !self.http.serves(mfad_http::Surface::Webhooks) {
            bail!("invalid configuration: {what} needs its webhooks served: add \"webhooks\" to serve = [...] of an [[http.listeners]] entry, or set [http] public_url to a node that serves them");
        }
        Ok(())
    }

    pub fn radius_listen(&self) -> anyhow::Result<std::net::SocketAddr> {
        self.radius.listen.parse().with_context(|| {
            format!("invalid configuration: radius.listen '{}' is not an address such as \"0.0.0.0:1812\"", self.radius.listen)
        })
    }

    /// This node's name: the configured one, else the host name.
    pub fn node_name(&self) -> String {
        if !self.server.name.is_empty() {
            return self.server.name.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "mfad".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Dotted key -> value for every leaf of `value` (an empty table is a leaf).
    fn leaves(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
        match value.as_table() {
            Some(table) if !table.is_empty() => {
                for (key, value) in table {
                    let dotted = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    leaves(&dotted, value, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned(), value.clone());
            }
        }
    }

    /// The keys of `documented` whose values differ from `defaults`, or that one side
    /// lacks, skipping `examples` (keys whose documented value is an example, not a
    /// default); one line each.
    fn differences(
        documented: &toml::Value,
        defaults: &toml::Value,
        examples: &[&str],
    ) -> Vec<String> {
        let (mut doc, mut code) = (BTreeMap::new(), BTreeMap::new());
        leaves("", documented, &mut doc);
        leaves("", defaults, &mut code);
        let keys: std::collections::BTreeSet<&String> = doc.keys().chain(code.keys()).collect();
        keys.into_iter()
            .filter(|key| {
                !examples
                    .iter()
                    .any(|e| key == e || key.starts_with(&format!("{e}.")))
            })
            .filter_map(|key| match (doc.get(key), code.get(key)) {
                (Some(d), Some(c)) if d == c => None,
                (d, c) => Some(format!(
                    "{key}: documented {}, code default {}",
                    d.map_or("(missing)".into(), ToString::to_string),
                    c.map_or("(none)".into(), ToString::to_string)
                )),
            })
            .collect()
    }

    /// One row of the key table in `docs/configuration.md`: the dotted keys it names
    /// (`section.*` for a `[section] ...` row) and the parts of its default cell, split
    /// at ` / ` as the keys are.
    struct DocRow {
        keys: Vec<String>,
        defaults: Vec<String>,
        line: String,
    }

    /// The rows of the `| key | default | meaning |` table, without the rows of keys
    /// that are stored settings only (they have no place in the file).
    fn documented_keys(text: &str) -> Vec<DocRow> {
        let mut rows = Vec::new();
        let mut in_table = false;
        for line in text.lines() {
            if line.starts_with("| key | default |") {
                in_table = true;
                continue;
            }
            if !in_table || line.starts_with("| ---") {
                continue;
            }
            let Some(row) = line.strip_prefix('|') else {
                break;
            };
            let cells: Vec<&str> = row.split(" | ").map(str::trim).collect();
            if cells[0].contains("stored setting") {
                continue;
            }
            let names: Vec<&str> = cells[0].split('`').skip(1).step_by(2).collect();
            let mut section = String::new();
            let mut keys = Vec::new();
            for name in names {
                let key = match name.rsplit_once(']') {
                    Some((head, key)) => {
                        section = head.trim_matches(['[', ']']).to_owned();
                        key.trim()
                    }
                    None => name,
                };
                keys.push(match key {
                    "" | "..." => format!("{section}.*"),
                    key => format!("{section}.{key}"),
                });
            }
            let defaults = cells[1].split(" / ").map(str::to_owned).collect();
            rows.push(DocRow {
                keys,
                defaults,
                line: line.to_owned(),
            });
        }
        rows
    }

    /// A default as the docs write it: a string without its quotes, anything else as TOML.
    fn shown(value: &toml::Value) -> String {
        match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    #[test]
    fn the_configuration_page_names_every_key_with_the_default_the_code_has() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let page = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
        let example = std::fs::read_to_string(root.join("mfad.example.toml")).unwrap();
        // Every key the code knows, with the default it has: the file's sections, the
        // directory's (a section that is off when absent) and the keys of one element
        // of each list of tables.
        let mut code = BTreeMap::new();
        leaves(
            "",
            &toml::Value::try_from(Config::default()).unwrap(),
            &mut code,
        );
        let directory = mfad_directory::DirectoryConfig {
            ca_file: Some("ca.pem".into()),
            bind_password_file: Some("bind.txt".into()),
            ..Default::default()
        };
        leaves(
            "directory",
            &toml::Value::try_from(directory).unwrap(),
            &mut code,
        );
        let target: TargetConfig =
            toml::from_str("name = \"a\"\naddress = \"h:1\"\nsecret = \"s\"\n").unwrap();
        leaves(
            "radius.targets",
            &toml::Value::try_from(target).unwrap(),
            &mut code,
        );
        let mut listener = mfad_http::HttpConfig::default()
            .effective_listeners()
            .remove(0);
        listener.tls_cert_file = "cert.pem".into();
        listener.tls_key_file = "key.pem".into();
        leaves(
            "http.listeners",
            &toml::Value::try_from(listener).unwrap(),
            &mut code,
        );
        code.remove("radius.targets");
        code.remove("http.listeners");
        // Keys whose documented default is a form, not a value the code holds.
        code.remove("radius.targets.secret");
        code.remove("radius.targets.secret_file");

        let rows = documented_keys(&page);
        assert!(
            rows.len() > 40,
            "the key table was not found: {} rows",
            rows.len()
        );
        let covers = |doc: &str, key: &str| match doc.strip_suffix(".*") {
            Some(prefix) => key == prefix || key.starts_with(&format!("{prefix}.")),
            None => doc == key,
        };
        let mut wrong = Vec::new();
        for key in code.keys() {
            if !rows.iter().any(|r| r.keys.iter().any(|d| covers(d, key))) {
                wrong.push(format!("{key}: in the code, missing from the page"));
            }
        }
        for row in &rows {
            for key in &row.keys {
                let known = code.keys().any(|k| covers(key, k))
                    || key.starts_with("radius.targets.")
                    || key == "directory.sync_items.*";
                if !known {
                    wrong.push(format!("{key}: on the page, unknown to the code"));
                }
                let leaf = key.rsplit('.').next().unwrap_or_default();
                if !key.ends_with(".*") && !example.contains(&format!("{leaf} =")) {
                    wrong.push(format!(
                        "{key}: on the page, missing from mfad.example.toml"
                    ));
                }
            }
            // A default written as one value in backticks is the code's default.
            if row.defaults.len() != row.keys.len() {
                continue;
            }
            for (key, cell) in row.keys.iter().zip(&row.defaults) {
                let value = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`'));
                let (Some(value), Some(default)) = (value, code.get(key)) else {
                    continue;
                };
                if value.contains('`') {
                    continue;
                }
                if value != shown(default) {
                    wrong.push(format!(
                        "{key}: the page says {value}, the code has {}\n    {}",
                        shown(default),
                        row.line
                    ));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "docs/configuration.md and the code disagree:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_shipped_example_parses_and_documents_every_default_as_it_is() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mfad.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: Config = toml::from_str(&text).unwrap();
        parsed.validate().unwrap();
        // "Every key is optional: these are the defaults": each key of the defaults is in
        // the example with the value the code uses, and the example has no other key.
        let documented: toml::Value = toml::from_str(&text).unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        // The listeners shown are an example; with none, `mfad serve` runs its default.
        let wrong = differences(&documented, &defaults, &["http.listeners"]);
        assert!(
            wrong.is_empty(),
            "mfad.example.toml and the code disagree:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_example_directory_section_parses_when_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mfad.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find("# [directory]")
            .expect("a commented [directory] example");
        // Settings are "# key = value", explanations "## text": dropping one "#" from
        // each line of the block gives valid TOML.
        let section: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| {
                l.strip_prefix("# ")
                    .or_else(|| l.strip_prefix('#'))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: Config = toml::from_str(&section).unwrap();
        let directory = parsed.directory.expect("[directory] parsed");
        directory.validate().unwrap();
        assert_eq!(directory.sync_items.len(), 2);
        assert_eq!(
            directory.sync_items[0].pin_mode(),
            Ok(mfad_core::model::PinMode::Pin)
        );
        // Every key of the section is documented.
        let keys = toml::Value::try_from(mfad_directory::DirectoryConfig::default()).unwrap();
        for key in keys.as_table().unwrap().keys() {
            assert!(
                section.contains(&format!("{key} ="))
                    || section.contains(&format!("[directory.{key}]"))
                    || section.contains(&format!("[[directory.{key}]]")),
                "directory.{key} is missing from the example"
            );
        }
        // Keys whose value shows the form, not the default: the rest are the defaults.
        let examples = [
            "servers",
            "ca_file",
            "bind_dn",
            "bind_password_file",
            "base_dn",
            "sync_interval",
            "attributes",
            "sync_items",
        ];
        let documented: toml::Value = toml::from_str(&section).unwrap();
        let wrong = differences(
            documented.get("directory").unwrap(),
            &toml::Value::try_from(mfad_directory::DirectoryConfig::default()).unwrap(),
            &examples,
        );
        assert!(
            wrong.is_empty(),
            "the example [directory] and the code disagree:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn the_example_radius_targets_parse_when_uncommented() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mfad.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text
            .find("# [[radius.targets]]")
            .expect("a commented [[radius.targets]] example");
        let section: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim_start())
            .filter(|l| l.starts_with("[[") || l.contains(" = "))
            .collect::<Vec<_>>()
            .join("\n");
        let radius = toml::from_str::<Config>(&section).unwrap().radius;
        assert_eq!(radius.targets.len(), 2);
        for target in &radius.targets {
            target.validate().unwrap();
        }
        for key in [
            "name",
            "address",
            "secret",
            "secret_file",
            "timeout_ms",
            "retries",
            "require_message_authenticator",
            "hold_down_ms",
        ] {
            assert!(
                section.contains(&format!("{key} =")),
                "radius.targets.{key} is missing from the example"
            );
        }
        // Both targets show the defaults of the keys that have one.
        let documented: toml::Value = toml::from_str(&section).unwrap();
        let targets = documented["radius"]["targets"].as_array().unwrap();
        for target in targets {
            let name = target["name"].as_str().unwrap();
            let minimal: TargetConfig = toml::from_str(&format!(
                "name = \"{name}\"\naddress = \"h:1\"\nsecret = \"s\"\n"
            ))
            .unwrap();
            let wrong = differences(
                target,
                &toml::Value::try_from(minimal).unwrap(),
                &["name", "address", "secret", "secret_file"],
            );
            assert!(
                wrong.is_empty(),
                "the example target {name} and the code disagree:\n{}",
                wrong.join("\n")
            );
        }
    }

    #[test]
    fn a_target_without_a_secret_or_with_a_bad_address_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mfad.toml");
        let cases = [
            ("name = \"a\"\naddress = \"10.0.0.5:1812\"\n", "no secret"),
            (
                "name = \"a\"\naddress = \"10.0.0.5\"\nsecret = \"s\"\n",
                "host:port",
            ),
            (
                "name = \"a,b\"\naddress = \"10.0.0.5:1812\"\nsecret = \"s\"\n",
                "without commas",
            ),
            (
                "name = \"a\"\naddress = \"h:1\"\nsecret = \"s\"\ntimout_ms = 5\n",
                "timout_ms",
            ),
        ];
        for (target, want) in cases {
            std::fs::write(
                &path,
                format!("[radius]\nlisten = \"127.0.0.1:0\"\n[[radius.targets]]\n{target}"),
            )
            .unwrap();
            let err = load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        std::fs::write(
            &path,
            "[[radius.targets]]\nname = \"a\"\naddress = \"h:1\"\nsecret = \"s\"\n[[radius.targets]]\nname = \"a\"\naddress = \"h:2\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("two radius.targets are named 'a'"), "{err}");
    }

    #[test]
    fn the_retired_webhook_listen_keys_are_refused_naming_the_http_listeners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mfad.toml");
        for (section, key) in [
            ("voice", "listen"),
            ("sms", "listen"),
            ("voice", "public_url"),
            ("sms", "public_url"),
        ] {
            std::fs::write(&path, format!("[{section}]\n{key} = \"127.0.0.1:8088\"\n")).unwrap();
            let err = load(Some(&path)).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{section}.{key} is no longer read")),
                "{err}"
            );
            assert!(err.contains("http"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn plain_http_on_a_public_address_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mfad.toml");
        std::fs::write(
            &path,
            "[[http.listeners]]\nlisten = \"0.0.0.0:8080\"\nserve = [\"portal\"]\ntls = false\n",
        )
        .unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
        std::fs::write(
            &path,
            "[[http.listeners]]\nlisten = \"127.0.0.1:8080\"\nserve = [\"portal\", \"metrics\"]\ntls = false\n",
        )
        .unwrap();
        let config = load(Some(&path)).unwrap();
        assert_eq!(config.http.listeners.len(), 1);
    }

    #[test]
    fn calls_without_a_webhooks_listener_or_public_url_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mfad.toml");
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        let voice = format!(
            "[voice]\ngateway = \"twilio\"\n[voice.twilio]\naccount_sid = \"AC1\"\nfrom = \"+15550100\"\nauth_token_file = {:?}\n",
            token.display().to_string()
        );
        let inside =
            "[[http.listeners]]\nlisten = \"127.0.0.1:0\"\nserve = [\"metrics\"]\ntls = false\n";
        std::fs::write(&path, format!("{inside}{voice}")).unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("\"webhooks\""), "{err}");
        std::fs::write(
            &path,
            format!("[http]\npublic_url = \"https://mfa.example.org\"\n{inside}{voice}"),
        )
        .unwrap();
        load(Some(&path)).unwrap();
        // No listeners at all: the default one serves the webhooks.
        std::fs::write(&path, &voice).unwrap();
        load(Some(&path)).unwrap();
    }

    #[test]
    fn unknown_keys_are_an_error_that_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mfad.toml");
        std::fs::write(&path, "[radius]\nlisten = \"127.0.0.1:0\"\nlsten = \"x\"\n").unwrap();
        let err = load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("lsten"), "{err}");
        assert!(err.contains("radius"), "{err}");
    }
}
