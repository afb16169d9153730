//! The rules both backends apply the same way, written once: how a PIN change moves
//! the PIN history, in which order a directory sync plan is applied, how an audit query
//! reads the log, how a challenge's kind is stored, and what a missing or clashing
//! record is called.

use mfad_core::audit::AuditQuery;
use mfad_core::model::{ChallengeKind, NewUser, TokenId, UserId};
use mfad_core::store::{DirectoryRecord, DirectorySync, StoreError, StoreResult};

/// The PIN history to store after a PIN change: the new hash (if any) first, then the
/// stored ones, at most `keep` in all. `stored` is the column's JSON list.
pub(crate) fn next_pin_history(
    id: UserId,
    stored: &str,
    pin_hash: Option<&str>,
    keep: usize,
) -> StoreResult<String> {
    let mut hashes: Vec<String> = serde_json::from_str(stored)
        .map_err(|e| StoreError::Corrupt(format!("PIN history of user with id {id}: {e}")))?;
    if let Some(hash) = pin_hash {
        hashes.insert(0, hash.to_owned());
    }
    hashes.truncate(keep);
    serde_json::to_string(&hashes).map_err(|e| StoreError::Corrupt(format!("PIN history: {e}")))
}

/// One change of a directory sync plan.
pub(crate) enum PlanStep<'a> {
    /// An existing user takes the directory's record.
    Update(UserId, &'a DirectoryRecord),
    /// A new user.
    Add(&'a NewUser),
    /// `enabled = false`, `sync_item = NULL`.
    Disable(UserId),
    /// Deleted like any user.
    Remove(UserId),
}

/// The changes of a plan in the order they are applied: updates before additions, so a
/// rename frees its old name for an entry added in the same plan; then disables and
/// removals.
pub(crate) fn plan_steps(changes: &DirectorySync) -> impl Iterator<Item = PlanStep<'_>> {
    let update = changes
        .update
        .iter()
        .map(|(id, record)| PlanStep::Update(*id, record));
    let add = changes.add.iter().map(PlanStep::Add);
    let disable = changes.disable.iter().map(|id| PlanStep::Disable(*id));
    let remove = changes.remove.iter().map(|id| PlanStep::Remove(*id));
    update.chain(add).chain(disable).chain(remove)
}

/// A parameter of an audit query.
pub(crate) enum AuditArg<'a> {
    Text(&'a str),
    Int(i64),
}

/// The statement for an audit query and its parameters in order; `placeholder(n)` writes
/// the n-th parameter in the backend's syntax (`?n`, `$n`). Newest first, walking the
/// time index backwards (a user filter is checked on the way, so a query by user with a
/// limit stops at the user's newest records).
pub(crate) fn audit_query(
    q: &AuditQuery,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<AuditArg<'_>>) {
    let mut sql = format!("SELECT {} FROM audit", crate::columns::AUDIT_COLUMNS);
    let mut args = Vec::new();
    let mut conditions = Vec::new();
    if let Some(user) = &q.username {
        args.push(AuditArg::Text(user));
        conditions.push(format!("username = {}", placeholder(args.len())));
    }
    if let Some(since) = q.since_ms {
        args.push(AuditArg::Int(since));
        conditions.push(format!("time_ms >= {}", placeholder(args.len())));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY time_ms DESC, seq DESC");
    if let Some(limit) = q.limit {
        args.push(AuditArg::Int(i64::from(limit)));
        sql.push_str(&format!(" LIMIT {}", placeholder(args.len())));
    }
    (sql, args)
}

/// A challenge kind as its column stores it (JSON).
pub(crate) fn kind_to_json(kind: &ChallengeKind) -> StoreResult<String> {
    serde_json::to_string(kind).map_err(|e| StoreError::Corrupt(format!("challenge kind: {e}")))
}

/// A challenge kind from its column.
pub(crate) fn kind_from_json(kind: &str) -> StoreResult<ChallengeKind> {
    serde_json::from_str(kind).map_err(|e| StoreError::Corrupt(format!("challenge kind: {e}")))
}

pub(crate) fn user_not_found(id: UserId) -> StoreError {
    StoreError::NotFound(format!("user with id {id}"))
}

pub(crate) fn token_not_found(id: TokenId) -> StoreError {
    StoreError::NotFound(format!("token with id {id}"))
}

pub(crate) fn email_not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("e-mail with id {id}"))
}

/// A username or directory ID that another user has.
pub(crate) fn user_taken(username: &str, directory_id: Option<&str>) -> StoreError {
    StoreError::Duplicate(match directory_id {
        Some(id) => format!("user '{username}' or directory ID {id}"),
        None => format!("user '{username}'"),
    })
}
