//! Conformance cases for the hot path: one-time bypasses, lockout slots, code attempts,
//! the authentication read, replay protection, cached successes and abuse limits.

use super::{
    audit_record, ensure, ensure_eq, ensure_err, given_token, given_user, new_token, CaseResult,
    Failure, NOW,
};
use mfad_core::audit::AuditQuery;
use mfad_core::model::NewToken;
use mfad_core::store::{CodeAttempt, FailureState, Store};
use std::sync::Arc;

pub async fn bypass_is_used_exactly_once_among_concurrent_calls(
    store: Arc<dyn Store>,
) -> CaseResult {
    let user = given_user(&*store, "judy").await?;
    store.set_bypass(user.id, Some(NOW + 60)).await?;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.consume_bypass(user.id, NOW).await })
        })
        .collect();
    let mut used = 0;
    for task in tasks {
        if task.await?? {
            used += 1;
        }
    }
    ensure_eq!(
        used,
        1,
        "exactly one of 20 concurrent calls uses the bypass"
    );
    let after = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!(after.bypass_until, None);
    ensure!(
        !store.consume_bypass(user.id, NOW).await?,
        "a used bypass is gone"
    );
    Ok(())
}

pub async fn expired_or_revoked_bypass_is_not_used(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "karl").await?;
    store.set_bypass(user.id, Some(NOW + 60)).await?;
    let granted = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!(granted.bypass_until, Some(NOW + 60));
    ensure!(
        !store.consume_bypass(user.id, NOW + 60).await?,
        "expired at its time"
    );
    ensure!(
        !store.consume_bypass(user.id, NOW + 61).await?,
        "expired after its time"
    );

    store.set_bypass(user.id, Some(NOW + 60)).await?;
    store.set_bypass(user.id, None).await?;
    ensure!(
        !store.consume_bypass(user.id, NOW).await?,
        "a revoked bypass is not used"
    );
    Ok(())
}

pub async fn attempt_at_the_limit_locks_and_resets_the_count(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "lena").await?;
    let first = store.take_attempt(user.id, NOW, 3, 900).await?;
    ensure_eq!(
        first,
        Some(FailureState {
            failures: 1,
            locked_until: None
        })
    );
    let second = store.take_attempt(user.id, NOW, 3, 900).await?;
    ensure_eq!(
        second,
        Some(FailureState {
            failures: 2,
            locked_until: None
        })
    );
    let third = store.take_attempt(user.id, NOW + 5, 3, 900).await?;
    ensure_eq!(
        third,
        Some(FailureState {
            failures: 0,
            locked_until: Some(NOW + 905)
        })
    );

    // A slot may be answered before it is committed; readers see it after the commit.
    store.flush().await?;
    let locked = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!((locked.failures, locked.locked_until), (0, Some(NOW + 905)));
    ensure!(
        locked.is_locked(NOW + 904) && !locked.is_locked(NOW + 905),
        "lock ends on time"
    );
    // While locked, no slot is granted and nothing changes.
    ensure_eq!(store.take_attempt(user.id, NOW + 904, 3, 900).await?, None);
    store.flush().await?;
    let still = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!((still.failures, still.locked_until), (0, Some(NOW + 905)));

    // Once the lock has run out, counting starts again; the old lock stays recorded
    // until a new one replaces it.
    let next = store.take_attempt(user.id, NOW + 905, 3, 900).await?;
    ensure_eq!(
        next,
        Some(FailureState {
            failures: 1,
            locked_until: None
        })
    );
    store.flush().await?;
    let again = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!(again.locked_until, Some(NOW + 905));
    Ok(())
}

pub async fn racing_attempts_get_at_most_the_limit_of_slots(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "mona").await?;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_attempt(user.id, NOW, 10, 600).await })
        })
        .collect();
    let mut states = Vec::new();
    for task in tasks {
        states.push(task.await??);
    }
    let granted: Vec<FailureState> = states.iter().flatten().copied().collect();
    ensure_eq!(
        granted.len(),
        10,
        "200 racing attempts, limit 10: {states:?}"
    );
    let mut counts: Vec<u32> = granted.iter().map(|s| s.failures).collect();
    counts.sort_unstable();
    ensure_eq!(
        counts,
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        "each slot counted once"
    );
    ensure!(
        granted
            .iter()
            .all(|s| (s.failures == 0) == (s.locked_until == Some(NOW + 600))),
        "the tenth slot locks for the lockout time: {granted:?}"
    );
    store.flush().await?;
    let after = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!((after.failures, after.locked_until), (0, Some(NOW + 600)));
    Ok(())
}

pub async fn a_released_slot_no_longer_counts(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "oona").await?;
    store.take_attempt(user.id, NOW, 3, 60).await?;
    store.take_attempt(user.id, NOW, 3, 60).await?;
    store.release_attempt(user.id).await?;
    store.flush().await?;
    let after = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!((after.failures, after.locked_until), (1, None));
    store.release_attempt(user.id).await?;
    store.release_attempt(user.id).await?;
    store.flush().await?;
    let floor = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!(floor.failures, 0, "never below zero");
    Ok(())
}

pub async fn clear_failures_resets_count_and_lock(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "nina").await?;
    store.take_attempt(user.id, NOW, 2, 60).await?;
    store.take_attempt(user.id, NOW, 2, 60).await?;
    store.take_attempt(user.id, NOW + 60, 2, 60).await?;
    store.flush().await?;
    let before = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!((before.failures, before.locked_until), (1, Some(NOW + 60)));
    store.clear_failures(user.id).await?;
    store.flush().await?;
    let after = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!((after.failures, after.locked_until), (0, None));
    Ok(())
}

pub async fn auth_subject_returns_the_user_with_their_tokens(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "paula").await?;
    let other = given_user(&*store, "quinn").await?;
    let lonely = given_user(&*store, "rita").await?;
    let created = store
        .create_tokens(
            &[
                new_token("PB", Some(user.id)),
                new_token("PA", Some(user.id)),
                new_token("QA", Some(other.id)),
                new_token("SPARE", None),
            ],
            NOW,
        )
        .await?;

    let (found, tokens) = store
        .auth_subject("Paula")
        .await?
        .ok_or_else(|| Failure::new("paula not found"))?;
    ensure_eq!(found, user);
    let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
    ensure_eq!(serials, ["PA", "PB"]);
    for token in &tokens {
        let stored = created.iter().find(|c| c.serial == token.serial);
        ensure_eq!(Some(token), stored, "the token as created, secret included");
    }

    let (found, tokens) = store
        .auth_subject("rita")
        .await?
        .ok_or_else(|| Failure::new("a user without tokens is still found"))?;
    ensure_eq!((found.id, tokens.len()), (lonely.id, 0));
    ensure!(
        store.auth_subject("nobody").await?.is_none(),
        "unknown user"
    );
    Ok(())
}

pub async fn a_code_attempt_takes_its_slot_and_its_outcome_together(
    store: Arc<dyn Store>,
) -> CaseResult {
    let user = given_user(&*store, "pia").await?;
    let token = given_token(&*store, "PIA-1", Some(user.id)).await?;
    let wrong = store.attempt_code(user.id, None, NOW, 3, 60, None).await?;
    ensure_eq!(
        wrong,
        CodeAttempt::Failed {
            replayed: false,
            state: FailureState {
                failures: 1,
                locked_until: None
            }
        }
    );
    ensure_eq!(
        store
            .attempt_code(user.id, Some((token.id, 0)), NOW, 3, 60, None)
            .await?,
        CodeAttempt::Accepted,
        "a fresh code is used and clears the count"
    );
    ensure_eq!(
        store
            .attempt_code(user.id, Some((token.id, 0)), NOW, 3, 60, None)
            .await?,
        CodeAttempt::Failed {
            replayed: true,
            state: FailureState {
                failures: 1,
                locked_until: None
            }
        },
        "the same value twice is a replay, counted as a failure"
    );
    for _ in 0..2 {
        store.attempt_code(user.id, None, NOW, 3, 60, None).await?;
    }
    ensure_eq!(
        store
            .attempt_code(user.id, Some((token.id, 1)), NOW + 59, 3, 60, None)
            .await?,
        CodeAttempt::Locked,
        "locked: even a fresh code decides nothing"
    );
    store.flush().await?;
    let tokens = store.tokens_for_user(user.id).await?;
    ensure_eq!(
        tokens.first().map(|t| t.next),
        Some(1),
        "the locked attempt left the token as it was"
    );
    ensure_eq!(
        store
            .attempt_code(user.id, Some((token.id, 1)), NOW + 60, 3, 60, None)
            .await?,
        CodeAttempt::Accepted,
        "once the lock has run out, a fresh code is used"
    );
    store.flush().await?;
    let after = store.user_by_id(user.id).await?;
    ensure_eq!(
        after.map(|u| (u.failures, u.locked_until)),
        Some((0, None)),
        "and clears the lock it ran out of"
    );
    Ok(())
}

pub async fn an_accepted_code_writes_the_record_it_was_given_and_only_then(
    store: Arc<dyn Store>,
) -> CaseResult {
    let user = given_user(&*store, "paz").await?;
    let token = given_token(&*store, "PAZ-1", Some(user.id)).await?;
    let record = |n| audit_record(n, "paz", NOW * 1000 + i64::from(n));
    let wrong = store
        .attempt_code(user.id, None, NOW, 3, 60, Some(record(1)))
        .await?;
    ensure!(matches!(wrong, CodeAttempt::Failed { .. }), "{wrong:?}");
    ensure_eq!(
        store
            .attempt_code(user.id, Some((token.id, 0)), NOW, 3, 60, Some(record(2)))
            .await?,
        CodeAttempt::Accepted
    );
    let replayed = store
        .attempt_code(user.id, Some((token.id, 0)), NOW, 3, 60, Some(record(3)))
        .await?;
    ensure!(
        matches!(replayed, CodeAttempt::Failed { .. }),
        "{replayed:?}"
    );
    // Answered once durable: the record is there without a flush.
    let written = store.query_audit(&AuditQuery::default()).await?;
    ensure_eq!(
        written,
        vec![record(2)],
        "only the accepted attempt's record, written with it"
    );
    Ok(())
}

pub async fn accepted_codes_at_once_each_write_their_own_record(
    store: Arc<dyn Store>,
) -> CaseResult {
    // Calls that arrive together may share a statement (PostgreSQL): each accepted code
    // brings its own record, and a code used twice in the burst brings one.
    let mut tasks = Vec::new();
    for n in 0..24u32 {
        let name = format!("burst{n}");
        let user = given_user(&*store, &name).await?;
        let token = given_token(&*store, &format!("BURST-{n}"), Some(user.id)).await?;
        let uses = if n == 0 { 2 } else { 1 };
        for k in 0..uses {
            let store = Arc::clone(&store);
            let record = audit_record(100 * n + k, &name, NOW * 1000 + i64::from(n));
            tasks.push(tokio::spawn(async move {
                store
                    .attempt_code(user.id, Some((token.id, 0)), NOW, 3, 60, Some(record))
                    .await
            }));
        }
    }
    let mut accepted = 0;
    for task in tasks {
        if task.await?? == CodeAttempt::Accepted {
            accepted += 1;
        }
    }
    ensure_eq!(accepted, 24, "one Accept per user");
    let written = store.query_audit(&AuditQuery::default()).await?;
    ensure_eq!(written.len(), 24, "{written:?}");
    for n in 0..24 {
        let name = format!("burst{n}");
        ensure_eq!(
            written.iter().filter(|r| r.username == name).count(),
            1,
            "{name}'s record"
        );
    }
    let first = written.iter().find(|r| r.username == "burst0");
    let expected = [
        audit_record(0, "burst0", NOW * 1000),
        audit_record(1, "burst0", NOW * 1000),
    ];
    ensure!(
        first.is_some_and(|r| expected.contains(r)),
        "burst0's record is one of the two it sent: {first:?}"
    );
    Ok(())
}

pub async fn racing_code_attempts_decide_at_most_the_limit(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "quinn").await?;
    let token = given_token(&*store, "QUINN-1", Some(user.id)).await?;
    // 199 wrong codes and, queued last, the right one.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&store);
            let fresh = (i == 199).then_some((token.id, 0));
            tokio::spawn(
                async move { store.attempt_code(user.id, fresh, NOW, 10, 600, None).await },
            )
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await??);
    }
    let decided = outcomes
        .iter()
        .filter(|o| **o != CodeAttempt::Locked)
        .count();
    ensure_eq!(decided, 10, "{outcomes:?}");
    ensure_eq!(
        outcomes.last(),
        Some(&CodeAttempt::Locked),
        "the right code after ten wrong ones"
    );
    Ok(())
}

async fn next_of(store: &dyn Store, serial: &str) -> Result<u64, Failure> {
    let token = store.token_by_serial(serial).await?;
    token
        .map(|t| t.next)
        .ok_or_else(|| Failure::new(format!("token {serial} missing")))
}

pub async fn advance_token_accepts_each_counter_once(store: Arc<dyn Store>) -> CaseResult {
    let created = store
        .create_tokens(
            &[NewToken {
                next: 5,
                ..new_token("ADV", None)
            }],
            NOW,
        )
        .await?;
    let id = created
        .first()
        .map(|t| t.id)
        .ok_or_else(|| Failure::new("no token"))?;
    ensure!(
        !store.advance_token(id, 4).await?,
        "a value below next was used already"
    );
    ensure!(store.advance_token(id, 5).await?, "next itself is fresh");
    ensure_eq!(next_of(&*store, "ADV").await?, 6);
    ensure!(
        !store.advance_token(id, 5).await?,
        "the same value twice is a replay"
    );
    ensure!(store.advance_token(id, 9).await?, "a later value is fresh");
    ensure_eq!(next_of(&*store, "ADV").await?, 10);
    ensure!(
        !store.advance_token(id, 7).await?,
        "values skipped over are used up"
    );
    ensure!(
        !store.advance_token(id + 1000, 50).await?,
        "a missing token never advances"
    );
    Ok(())
}

pub async fn concurrent_advances_with_the_same_counter_succeed_once(
    store: Arc<dyn Store>,
) -> CaseResult {
    let token = given_token(&*store, "RACE", None).await?;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.advance_token(token.id, 7).await })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        if task.await?? {
            fresh += 1;
        }
    }
    ensure_eq!(fresh, 1, "one of 50 identical codes is accepted");
    ensure_eq!(next_of(&*store, "RACE").await?, 8);
    Ok(())
}

pub async fn advance_token_never_moves_backward(store: Arc<dyn Store>) -> CaseResult {
    let token = given_token(&*store, "MONO", None).await?;
    // Every value 0..50 once, in a scrambled order (7 is coprime with 50).
    let tasks: Vec<_> = (0..50u64)
        .map(|i| {
            let store = Arc::clone(&store);
            let used = i * 7 % 50;
            tokio::spawn(async move {
                store
                    .advance_token(token.id, used)
                    .await
                    .map(|ok| (used, ok))
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for task in tasks {
        let (used, ok) = task.await??;
        if ok {
            accepted.push(used);
        }
    }
    ensure!(
        accepted.contains(&49),
        "the highest value is always fresh: {accepted:?}"
    );
    ensure_eq!(next_of(&*store, "MONO").await?, 50);

    ensure!(
        store.advance_token(token.id, 60).await?,
        "a later value is fresh"
    );
    ensure!(
        !store.advance_token(token.id, 55).await?,
        "an earlier value is not"
    );
    ensure_eq!(next_of(&*store, "MONO").await?, 61);
    Ok(())
}

pub async fn resync_is_remembered_and_cleared_by_an_advance(store: Arc<dyn Store>) -> CaseResult {
    let token = given_token(&*store, "SYNC", None).await?;
    store.set_token_resync(token.id, Some(123)).await?;
    let resync = store.token_by_serial("SYNC").await?.and_then(|t| t.resync);
    ensure_eq!(resync, Some(123));
    store.set_token_resync(token.id, None).await?;
    let resync = store.token_by_serial("SYNC").await?.and_then(|t| t.resync);
    ensure_eq!(resync, None);

    store.set_token_resync(token.id, Some(40)).await?;
    ensure!(store.advance_token(token.id, 3).await?, "fresh value");
    let after = store
        .token_by_serial("SYNC")
        .await?
        .ok_or_else(|| Failure::new("token gone"))?;
    ensure_eq!(
        (after.next, after.resync),
        (4, None),
        "an accepted code ends a pending resync"
    );
    ensure_err!(
        store.set_token_resync(token.id + 1000, Some(1)).await,
        NotFound
    );
    Ok(())
}

pub async fn cached_auth_holds_until_its_time(store: Arc<dyn Store>) -> CaseResult {
    store.put_cached_auth("zoe|vpn", NOW + 60).await?;
    ensure!(
        store.cached_auth("zoe|vpn", NOW).await?,
        "valid before its time"
    );
    ensure!(
        store.cached_auth("zoe|vpn", NOW + 59).await?,
        "valid just before its time"
    );
    ensure!(
        !store.cached_auth("zoe|vpn", NOW + 60).await?,
        "expired at its time"
    );
    ensure!(
        !store.cached_auth("zoe|rdg", NOW).await?,
        "keys do not match by prefix"
    );
    ensure!(
        !store.cached_auth("zoe", NOW).await?,
        "keys do not match by prefix"
    );
    store.put_cached_auth("zoe|vpn", NOW + 120).await?;
    ensure!(
        store.cached_auth("zoe|vpn", NOW + 100).await?,
        "a new success extends it"
    );
    Ok(())
}

pub async fn rate_limit_allows_the_limit_per_window_then_refuses(
    store: Arc<dyn Store>,
) -> CaseResult {
    for n in 1..=3 {
        ensure!(
            store.take_rate("sms:user:1", NOW, 60, 3).await?,
            "use {n} of 3 is allowed"
        );
    }
    ensure!(
        !store.take_rate("sms:user:1", NOW + 30, 60, 3).await?,
        "the fourth in the window is refused"
    );
    ensure!(
        !store.take_rate("sms:user:1", NOW + 59, 60, 3).await?,
        "refused uses do not extend or reset the window"
    );
    ensure!(
        store.take_rate("sms:user:2", NOW + 30, 60, 3).await?,
        "keys are independent"
    );
    ensure!(
        store.take_rate("sms:user:1", NOW + 60, 60, 3).await?,
        "a new window starts when the old one ends"
    );
    ensure!(
        store.take_rate("sms:user:1", NOW + 61, 60, 3).await?,
        "second use of the new window"
    );
    ensure!(
        store.take_rate("sms:user:1", NOW + 62, 60, 3).await?,
        "third use of the new window"
    );
    ensure!(
        !store.take_rate("sms:user:1", NOW + 63, 60, 3).await?,
        "the new window has the same limit"
    );
    Ok(())
}

pub async fn concurrent_uses_never_exceed_the_rate_limit(store: Arc<dyn Store>) -> CaseResult {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_rate("call:gateway", NOW, 3600, 7).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await?? {
            allowed += 1;
        }
    }
    ensure_eq!(allowed, 7, "exactly the limit among 20 concurrent uses");
    Ok(())
}
