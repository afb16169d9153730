//! mfad-store: the [`Store`] implementations and the conformance suite they share
//! (behind the `conformance` feature, for tests).
//!
//! [`open`] turns the configured URL into a store: `sqlite://PATH` (the default,
//! embedded) or `postgres://...` for several nodes on one database. [`snapshot_file`]
//! reads and writes the backup format both share.

mod columns;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod crypto;
mod pending_phones;
mod pending_txns;
pub mod postgres;
mod rows;
mod rules;
mod sealed;
pub mod snapshot_file;
mod snapshot_rows;
pub mod sqlite;

pub use crypto::Cipher;
pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

use mfad_core::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Settings per backend; each backend reads its own part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    pub sqlite: SqliteOptions,
    pub postgres: PgOptions,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(
        "store URL '{url}' is not supported; use sqlite://PATH (or sqlite:PATH) \
         or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl { url: String },
    #[error("store URL '{url}' names no database file; use sqlite://PATH, e.g. sqlite://mfad-data/mfad.db")]
    MissingPath { url: String },
    #[error(transparent)]
    Key(#[from] crypto::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A parsed store URL.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Sqlite(PathBuf),
    Postgres,
}

/// The stored form of a username in every backend, the core's one normalisation:
/// trimmed and lower-case, so uniqueness is case-insensitive.
pub(crate) fn normalise_username(username: &str) -> String {
    mfad_core::username::normalise(username)
}

/// The user as every backend stores them: the username normalised.
pub(crate) fn normalised_user(user: &mfad_core::model::NewUser) -> mfad_core::model::NewUser {
    mfad_core::model::NewUser {
        username: normalise_username(&user.username),
        ..user.clone()
    }
}

/// Hides passwords (`scheme://user:password@host`, `?password=...`) before a URL goes
/// into a message.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) if userinfo.contains(':') => {
                    let user = userinfo.split(':').next().unwrap_or_default();
                    format!("{scheme}://{user}:***@{host}{tail}")
                }
                _ => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Whether the URL names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn names_postgres(url: &str) -> bool {
    matches!(parse_url(url), Ok(Target::Postgres))
}

fn parse_url(url: &str) -> Result<Target, OpenError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Ok(Target::Postgres);
    }
    let path = if lower.starts_with("sqlite://") {
        url.get("sqlite://".len()..)
    } else if lower.starts_with("sqlite:") {
        url.get("sqlite:".len()..)
    } else {
        return Err(OpenError::UnsupportedUrl { url: redact(url) });
    };
    match path {
        // An in-memory database would be private to each connection, so the readers
        // would never see what the writer stored.
        Some(p) if !p.is_empty() && p != ":memory:" => Ok(Target::Sqlite(PathBuf::from(p))),
        _ => Err(OpenError::MissingPath {
            url: url.to_owned(),
        }),
    }
}

/// Opens the store the URL names, with secrets sealed by the key in `key_file`
/// (created with a fresh key on first use).
///
/// `sqlite://PATH` takes a relative (`sqlite://mfad-data/mfad.db`) or absolute
/// (`sqlite:///var/lib/mfad/mfad.db`) path; `sqlite:PATH` works too.
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]` (or `postgresql://`)
/// opens a connection pool to PostgreSQL and migrates its schema.
pub async fn open(
    url: &str,
    key_file: &Path,
    options: OpenOptions,
) -> Result<Arc<dyn Store>, OpenError> {
    match parse_url(url)? {
        Target::Sqlite(path) => {
            let key_file = key_file.to_owned();
            // Key file and database I/O, migrations: keep them off the async workers.
            let opened = tokio::task::spawn_blocking(move || {
                let cipher = Cipher::load_or_create(&key_file)?;
                let store = SqliteStore::open(&path, cipher, options.sqlite)?;
                Ok::<_, OpenError>(Arc::new(store) as Arc<dyn Store>)
            })
            .await;
            opened.map_err(|e| {
                OpenError::Store(StoreError::Unavailable(format!(
                    "opening the store failed: {e}"
                )))
            })?
        }
        Target::Postgres => {
            let key_file = key_file.to_owned();
            let cipher = tokio::task::spawn_blocking(move || Cipher::load_or_create(&key_file))
                .await
                .map_err(|e| {
                    OpenError::Store(StoreError::Unavailable(format!(
                        "reading the key file failed: {e}"
                    )))
                })??;
            let store = PgStore::open(url, cipher, options.postgres).await?;
            Ok(Arc::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_relative_and_absolute_paths() {
        let cases = [
            ("sqlite://mfad-data/mfad.db", "mfad-data/mfad.db"),
            ("sqlite:///var/lib/mfad/mfad.db", "/var/lib/mfad/mfad.db"),
            ("sqlite:mfad.db", "mfad.db"),
            ("sqlite:/abs/mfad.db", "/abs/mfad.db"),
            ("SQLITE://Upper/Case.db", "Upper/Case.db"),
        ];
        for (url, path) in cases {
            assert_eq!(
                parse_url(url).unwrap(),
                Target::Sqlite(PathBuf::from(path)),
                "{url}"
            );
        }
    }

    #[test]
    fn sqlite_url_without_a_path_is_rejected() {
        for url in ["sqlite://", "sqlite:", "sqlite::memory:"] {
            let err = parse_url(url).unwrap_err().to_string();
            assert!(err.contains("names no database file"), "{url}: {err}");
        }
    }

    #[test]
    fn postgres_urls_are_recognised() {
        for url in [
            "postgres://mfad:hunter2@db/mfad",
            "postgresql://db/mfad",
            "POSTGRES://db",
        ] {
            assert_eq!(parse_url(url).unwrap(), Target::Postgres, "{url}");
        }
    }

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            redact("postgres://mfad:hunter2@db:5432/mfad"),
            "postgres://mfad:***@db:5432/mfad"
        );
        assert_eq!(redact("postgres://mfad@db/mfad"), "postgres://mfad@db/mfad");
        assert_eq!(
            redact("postgres://db/x?sslmode=require&password=in-query"),
            "postgres://db/x?sslmode=require&password=***"
        );
        assert_eq!(redact("sqlite://a/b"), "sqlite://a/b");
    }

    #[test]
    fn unknown_scheme_names_the_url_and_the_accepted_forms() {
        let err = parse_url("mysql://root:pw@localhost/mfad")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql://root:***@localhost/mfad"), "{err}");
        assert!(
            err.contains("sqlite://PATH") && err.contains("postgres://"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        let err = parse_url("mfad.db").unwrap_err().to_string();
        assert!(err.contains("'mfad.db'"), "{err}");
    }
}
