//! Configuration: built-in defaults, then a TOML file, then `MFAD__SECTION__KEY` variables.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use mfad_core::policy::Policy;
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
    /// How long an Access-Reject is held back, to slow down guessing (FreeRADIUS'
    /// `reject_delay`); 0 sends it at once.
    pub reject_delay_ms: u64,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "0.0.0.0:1812".into(),
            reject_delay_ms: 1000,
        }
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

/// Loads the configuration: `explicit` (from `--config` or `$MFAD_CONFIG`), else
/// `./mfad.toml` when present, else defaults; the environment overlay applies in every case.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
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
    let config: Config = figment
        .extract()
        .map_err(|e| anyhow::anyhow!(describe(&e)))?;
    config.validate()?;
    Ok(config)
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

    #[test]
    fn the_shipped_example_parses_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mfad.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: Config = toml::from_str(&text).unwrap();
        parsed.validate().unwrap();
        // Every key of the defaults appears in the example (uncommented or as `# key =`).
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        for (section, table) in defaults.as_table().unwrap() {
            assert!(
                text.contains(&format!("[{section}]")),
                "section [{section}] missing"
            );
            for (key, value) in table.as_table().unwrap() {
                let documented = match value.as_table() {
                    Some(sub) => {
                        text.contains(&format!("[{section}.{key}]"))
                            && sub.keys().all(|k| text.contains(&format!("{k} =")))
                    }
                    None => text.contains(&format!("{key} =")),
                };
                assert!(
                    documented,
                    "{section}.{key} is missing from mfad.example.toml"
                );
            }
        }
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
