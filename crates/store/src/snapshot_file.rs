//! The backup file: a versioned JSON-lines rendering of a [`Snapshot`].
//!
//! ```text
//! {"kind":"header","format":"mfad-snapshot","version":3,"ids":{"users":7,"tokens":9,"clients":1,"emails":3}}
//! {"kind":"user","row":{"id":1,"username":"alice",...}}
//! {"kind":"token","row":{"id":1,"serial":"T1","secret":"v1:1a2b3c4d:...",...}}
//! {"kind":"client","row":{...}}   {"kind":"challenge","row":{...}}
//! {"kind":"cached_auth","row":{...}}   {"kind":"audit","row":{...}}
//! {"kind":"email","row":{...}}   {"kind":"rate_limit","row":{...}}
//! {"kind":"directory_sync","row":{...}}
//! {"kind":"setting","row":{"key":"policy.max_failures","value":"5","secret":false,...}}
//! {"kind":"end","counts":{"users":1,"tokens":1,...}}
//! ```
//!
//! One record per line, so a file of millions of audit records is read and written a
//! line at a time and can be inspected with `grep` and `jq`. Secrets stay sealed with
//! the key that wrote them; the `end` line carries the row counts, so a truncated file
//! is refused instead of restored in part.

use mfad_core::audit::AuditRecord;
use mfad_core::snapshot::{
    CachedAuthRow, ChallengeRow, ClientRow, DirectorySyncRow, EmailRow, IdHighWater, RateLimitRow,
    RowCounts, SettingRow, Snapshot, TokenRow, UserRow,
};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};

const FORMAT: &str = "mfad-snapshot";
/// 2 added e-mails, rate limits and the directory sync row, and new user and client
/// columns; 3 added stored settings. Older files still read (what they lack takes its
/// default: new columns their schema default, settings none).
const VERSION: u32 = 3;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotFileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("not an mfad backup: the first line is not an mfad-snapshot header")]
    NotASnapshot,
    #[error("backup format version {0} is newer than this build of mfad reads ({VERSION}); upgrade mfad")]
    NewerVersion(u32),
    #[error("the backup is incomplete: it has no end line (was the file cut short?)")]
    Truncated,
    #[error("the backup's end line counts {expected:?} but the file holds {found:?}")]
    // Boxed: two full sets of counts would make every result of this module large.
    CountMismatch {
        expected: Box<RowCounts>,
        found: Box<RowCounts>,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Header {
        format: String,
        version: u32,
        ids: IdHighWater,
    },
    User {
        row: UserRow,
    },
    Token {
        row: TokenRow,
    },
    Client {
        row: ClientRow,
    },
    Challenge {
        row: ChallengeRow,
    },
    CachedAuth {
        row: CachedAuthRow,
    },
    Audit {
        row: AuditRecord,
    },
    Email {
        row: EmailRow,
    },
    RateLimit {
        row: RateLimitRow,
    },
    DirectorySync {
        row: DirectorySyncRow,
    },
    Setting {
        row: SettingRow,
    },
    End {
        counts: RowCounts,
    },
}

fn put(out: &mut impl Write, line: &Line) -> Result<(), SnapshotFileError> {
    serde_json::to_writer(&mut *out, line).map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the snapshot, one record per line, ending with the row counts.
pub fn write(snapshot: &Snapshot, mut out: impl Write) -> Result<(), SnapshotFileError> {
    put(
        &mut out,
        &Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            ids: snapshot.ids,
        },
    )?;
    for row in &snapshot.users {
        put(&mut out, &Line::User { row: row.clone() })?;
    }
    for row in &snapshot.tokens {
        put(&mut out, &Line::Token { row: row.clone() })?;
    }
    for row in &snapshot.clients {
        put(&mut out, &Line::Client { row: row.clone() })?;
    }
    for row in &snapshot.challenges {
        put(&mut out, &Line::Challenge { row: row.clone() })?;
    }
    for row in &snapshot.cached_auth {
        put(&mut out, &Line::CachedAuth { row: row.clone() })?;
    }
    for row in &snapshot.audit {
        put(&mut out, &Line::Audit { row: row.clone() })?;
    }
    for row in &snapshot.emails {
        put(&mut out, &Line::Email { row: row.clone() })?;
    }
    for row in &snapshot.rate_limits {
        put(&mut out, &Line::RateLimit { row: row.clone() })?;
    }
    put(
        &mut out,
        &Line::DirectorySync {
            row: snapshot.directory_sync.clone(),
        },
    )?;
    for row in &snapshot.settings {
        put(&mut out, &Line::Setting { row: row.clone() })?;
    }
    put(
        &mut out,
        &Line::End {
            counts: snapshot.counts(),
        },
    )?;
    out.flush()?;
    Ok(())
}

/// Reads a snapshot written by [`write`], refusing one that is cut short or altered in
/// its row counts.
pub fn read(input: impl BufRead) -> Result<Snapshot, SnapshotFileError> {
    let mut snapshot = Snapshot::default();
    let mut header = false;
    let mut end = None;
    for (index, text) in input.lines().enumerate() {
        let text = text?;
        let line = index + 1;
        if text.trim().is_empty() {
            continue;
        }
        if end.is_some() {
            return Err(SnapshotFileError::Malformed {
                line,
                reason: "data after the end line".into(),
            });
        }
        let parsed: Line = match serde_json::from_str(&text) {
            Ok(parsed) => parsed,
            Err(_) if !header => return Err(SnapshotFileError::NotASnapshot),
            Err(e) => {
                return Err(SnapshotFileError::Malformed {
                    line,
                    reason: e.to_string(),
                })
            }
        };
        match parsed {
            Line::Header {
                format,
                version,
                ids,
            } if !header => {
                if format != FORMAT {
                    return Err(SnapshotFileError::NotASnapshot);
                }
                if version > VERSION {
                    return Err(SnapshotFileError::NewerVersion(version));
                }
                snapshot.ids = ids;
                header = true;
            }
            _ if !header => return Err(SnapshotFileError::NotASnapshot),
            Line::Header { .. } => {
                return Err(SnapshotFileError::Malformed {
                    line,
                    reason: "a second header".into(),
                })
            }
            Line::User { row } => snapshot.users.push(row),
            Line::Token { row } => snapshot.tokens.push(row),
            Line::Client { row } => snapshot.clients.push(row),
            Line::Challenge { row } => snapshot.challenges.push(row),
            Line::CachedAuth { row } => snapshot.cached_auth.push(row),
            Line::Audit { row } => snapshot.audit.push(row),
            Line::Email { row } => snapshot.emails.push(row),
            Line::RateLimit { row } => snapshot.rate_limits.push(row),
            Line::DirectorySync { row } => snapshot.directory_sync = row,
            Line::Setting { row } => snapshot.settings.push(row),
            Line::End { counts } => end = Some(counts),
        }
    }
    if !header {
        return Err(SnapshotFileError::NotASnapshot);
    }
    let expected = end.ok_or(SnapshotFileError::Truncated)?;
    let found = snapshot.counts();
    if expected != found {
        return Err(SnapshotFileError::CountMismatch {
            expected: Box::new(expected),
            found: Box::new(found),
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfad_core::model::PinMode;

    fn sample() -> Snapshot {
        Snapshot {
            ids: IdHighWater {
                users: 3,
                tokens: 2,
                clients: 1,
                emails: 4,
            },
            users: vec![UserRow {
                id: 2,
                username: "alice".into(),
                given_name: "Alice".into(),
                surname: String::new(),
                email: String::new(),
                phone: String::new(),
                enabled: true,
                blocked_until: None,
                block_reason: None,
                locked_until: Some(5),
                failures: 1,
                pin_mode: PinMode::Pin,
                pin_hash: Some("$argon2id$x".into()),
                pin_change_required: false,
                pin_history: vec!["$argon2id$x".into()],
                bypass_until: None,
                created_at: 1,
                mobile: "+41790000000".into(),
                extension: String::new(),
                language: "de-CH".into(),
                directory_id: Some("guid-1".into()),
                sync_item: Some("ou=staff".into()),
                method: mfad_core::model::Method::Sms,
                backup_phone: String::new(),
            }],
            tokens: vec![TokenRow {
                id: 2,
                serial: "T1".into(),
                user_id: Some(2),
                kind: "hotp".into(),
                algorithm: "sha1".into(),
                digits: 6,
                period: 30,
                secret: "v1:00000000:AAAA".into(),
                next: 7,
                resync: None,
                enabled: true,
                created_at: 1,
            }],
            emails: vec![EmailRow {
                id: 4,
                user_id: Some(2),
                recipient: "alice@example.com".into(),
                kind: "welcome".into(),
                subject: "Welcome".into(),
                body: "v1:00000000:BBBB".into(),
                once_key: Some("welcome:2".into()),
                status: "queued".into(),
                attempts: 1,
                next_attempt_at: 9,
                last_error: Some("timed out".into()),
                created_at: 1,
                sent_at: None,
            }],
            rate_limits: vec![RateLimitRow {
                key: "sms:user:2".into(),
                window_start: 1,
                count: 2,
            }],
            directory_sync: DirectorySyncRow {
                last_run: Some(8),
                last_summary: "1 added".into(),
                approved_count: Some(3),
                ..DirectorySyncRow::default()
            },
            settings: vec![SettingRow {
                key: "sms.twilio.auth_token".into(),
                value: "v1:00000000:CCCC".into(),
                secret: true,
                updated_at: 9,
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_version_1_file_reads_with_the_new_columns_defaulted() {
        let text = concat!(
            r#"{"kind":"header","format":"mfad-snapshot","version":1,"ids":{"users":1,"tokens":0,"clients":0}}"#,
            "\n",
            r#"{"kind":"user","row":{"id":1,"username":"bob","given_name":"","surname":"","email":"","phone":"","enabled":true,"blocked_until":null,"block_reason":null,"locked_until":null,"failures":0,"pin_mode":"standard","pin_hash":null,"pin_change_required":false,"pin_history":[],"bypass_until":null,"created_at":1}}"#,
            "\n",
            r#"{"kind":"end","counts":{"users":1,"tokens":0,"clients":0,"challenges":0,"cached_auth":0,"audit":0}}"#,
            "\n",
        );
        let snapshot = read(text.as_bytes()).unwrap();
        let user = &snapshot.users[0];
        assert_eq!(user.username, "bob");
        assert_eq!(user.method, mfad_core::model::Method::App);
        assert_eq!(user.directory_id, None);
        assert_eq!(snapshot.ids.emails, 0);
        assert!(snapshot.emails.is_empty());
    }

    #[test]
    fn a_version_2_file_reads_with_no_settings() {
        let text = concat!(
            r#"{"kind":"header","format":"mfad-snapshot","version":2,"ids":{"users":0,"tokens":0,"clients":0,"emails":0}}"#,
            "\n",
            r#"{"kind":"directory_sync","row":{"last_run":null,"last_summary":"","pending_count":0,"pending_reason":"","approved_count":null,"lock_holder":null,"lock_until":null}}"#,
            "\n",
            r#"{"kind":"end","counts":{"users":0,"tokens":0,"clients":0,"challenges":0,"cached_auth":0,"audit":0,"emails":0,"rate_limits":0}}"#,
            "\n",
        );
        let snapshot = read(text.as_bytes()).unwrap();
        assert!(snapshot.settings.is_empty());
        assert_eq!(snapshot.counts().settings, 0);
    }

    #[test]
    fn a_written_snapshot_reads_back_equal() {
        let mut out = Vec::new();
        write(&sample(), &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("{\"kind\":\"header\",\"format\":\"mfad-snapshot\",\"version\":3"));
        // Header, user, token, e-mail, rate limit, directory sync, setting, end.
        assert_eq!(text.lines().count(), 8, "{text}");
        assert_eq!(read(out.as_slice()).unwrap(), sample());
    }

    #[test]
    fn a_cut_short_file_is_refused() {
        let mut out = Vec::new();
        write(&sample(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(matches!(
            read(cut.as_bytes()),
            Err(SnapshotFileError::Truncated)
        ));
        let without_token: String = text
            .lines()
            .filter(|l| !l.contains("\"kind\":\"token\""))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(matches!(
            read(without_token.as_bytes()),
            Err(SnapshotFileError::CountMismatch { .. })
        ));
    }

    #[test]
    fn other_files_are_not_taken_for_a_backup() {
        assert!(matches!(
            read("SQLite format 3\0".as_bytes()),
            Err(SnapshotFileError::NotASnapshot)
        ));
        assert!(matches!(
            read("{\"kind\":\"user\"}\n".as_bytes()),
            Err(SnapshotFileError::NotASnapshot)
        ));
        assert!(matches!(
            read(
                "{\"kind\":\"header\",\"format\":\"mfad-snapshot\",\"version\":9,\"ids\":{\"users\":0,\"tokens\":0,\"clients\":0}}\n"
                    .as_bytes()
            ),
            Err(SnapshotFileError::NewerVersion(9))
        ));
    }
}
