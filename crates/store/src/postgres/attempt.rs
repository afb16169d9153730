//! A one-time code's attempt, batched (see [`super::batch`]): the slot, the use of the
//! code and the failure count of [`mfad_core::store::AuthStore::attempt_code`] in one
//! statement, with the audit record of an accepted code, so an accepted code costs one
//! commit as it did before slots and before durable audit records. Users are
//! locked in id order first; a user's tokens are only touched under its lock, so two
//! batches never wait for each other's tokens.

use super::audit::{bind_records, insert_sql};
use super::batch::{fetch_rows, Job};
use super::map::get;
use async_trait::async_trait;
use mfad_core::audit::AuditRecord;
use mfad_core::model::UserId;
use mfad_core::store::{CodeAttempt, FailureState, StoreError, StoreResult};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgPool};
use std::collections::HashMap;
use std::sync::LazyLock;

/// One attempt: the user, the token and counter value its code matched (if any), the
/// lockout policy in force, and the audit record to insert if the code is accepted.
pub(super) struct Attempt {
    pub(super) user: UserId,
    pub(super) fresh: Option<(i64, i64)>,
    pub(super) now: i64,
    pub(super) max_failures: i64,
    pub(super) lockout_seconds: i64,
    pub(super) accepted: Option<AuditRecord>,
}

/// `u`: the users, locked, with whether each is locked out now. `adv`: the tokens moved
/// past fresh codes of users not locked out. `done`: the failure count of those users,
/// cleared after a used code, else counted (locking at the limit). `ins`: the audit
/// records (bound from `$8`, each with its user in `$7`) of the codes accepted. One row
/// per user.
static ATTEMPT: LazyLock<String> = LazyLock::new(|| {
    let insert = insert_sql(8, Some("JOIN done d ON d.id = r.key AND d.accepted"));
    format!(
        "
    WITH v AS (
        SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
            $5::bigint[], $6::bigint[]) AS v(uid, token, used, now, max_failures, lockout)
    ), u AS (
        SELECT x.id, x.failures, v.token, v.used, v.now, v.max_failures, v.lockout,
            COALESCE(x.locked_until > v.now, false) AS locked
        FROM users x JOIN v ON v.uid = x.id
        ORDER BY x.id
        FOR UPDATE OF x
    ), adv AS (
        UPDATE tokens t SET next = u.used + 1, resync = NULL
        FROM u
        WHERE NOT u.locked AND t.id = u.token AND t.user_id = u.id AND t.next <= u.used
        RETURNING t.id AS token
    ), done AS (
        UPDATE users x SET
            failures = CASE WHEN a.token IS NOT NULL OR u.failures + 1 >= u.max_failures
                THEN 0 ELSE u.failures + 1 END,
            locked_until = CASE WHEN a.token IS NOT NULL THEN NULL
                WHEN u.failures + 1 >= u.max_failures THEN u.now + u.lockout
                ELSE x.locked_until END
        FROM u LEFT JOIN adv a ON a.token = u.token
        WHERE x.id = u.id AND NOT u.locked
        RETURNING x.id, x.failures, a.token IS NOT NULL AS accepted,
            CASE WHEN a.token IS NULL AND x.failures = 0 THEN x.locked_until END AS locks
    ), ins AS (
        {insert}
    )
    SELECT u.id, u.locked, u.token IS NOT NULL, COALESCE(d.accepted, false),
        COALESCE(d.failures, 0), d.locks
    FROM u LEFT JOIN done d ON d.id = u.id"
    )
});

pub(super) struct AttemptJob;

#[async_trait]
impl Job for AttemptJob {
    type Item = Attempt;
    /// `None` for a user that does not exist.
    type Answer = Option<CodeAttempt>;
    type Key = UserId;
    const MAX_BATCH: usize = 512;
    const WHAT: &'static str = "a code attempt";
    const LABEL: &'static str = "attempt";

    fn key(item: &Attempt) -> &UserId {
        &item.user
    }

    async fn apply(&self, pool: &PgPool, items: Vec<&Attempt>) -> StoreResult<Vec<Self::Answer>> {
        let column =
            |f: fn(&Attempt) -> Option<i64>| items.iter().map(|a| f(a)).collect::<Vec<_>>();
        let accepted = items
            .iter()
            .filter_map(|a| a.accepted.as_ref().map(|record| (a.user, record)));
        let mut args = PgArguments::default();
        let bind_err = |e| StoreError::Unavailable(format!("cannot bind code attempts: {e}"));
        for value in [
            column(|a| Some(a.user)),
            column(|a| a.fresh.map(|(token, _)| token)),
            column(|a| a.fresh.map(|(_, used)| used)),
            column(|a| Some(a.now)),
            column(|a| Some(a.max_failures)),
            column(|a| Some(a.lockout_seconds)),
            accepted.clone().map(|(user, _)| Some(user)).collect(),
        ] {
            args.add(value).map_err(bind_err)?;
        }
        bind_records(&mut args, accepted.map(|(_, record)| record))?;
        let statement = sqlx::query_with(&ATTEMPT, args);
        let mut answers = HashMap::new();
        for row in &fetch_rows(pool, statement).await? {
            let id: UserId = get(row, 0)?;
            let locked: bool = get(row, 1)?;
            let fresh: bool = get(row, 2)?;
            let accepted: bool = get(row, 3)?;
            let failures: i32 = get(row, 4)?;
            let answer = if locked {
                CodeAttempt::Locked
            } else if accepted {
                CodeAttempt::Accepted
            } else {
                CodeAttempt::Failed {
                    replayed: fresh,
                    state: FailureState {
                        failures: u32::try_from(failures).unwrap_or_default(),
                        locked_until: get(row, 5)?,
                    },
                }
            };
            answers.insert(id, answer);
        }
        Ok(items.iter().map(|a| answers.remove(&a.user)).collect())
    }
}
