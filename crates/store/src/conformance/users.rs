//! Conformance cases for users: records, lockout, bypass, block, PINs, bulk load and
//! the authentication read.

use super::{
    audit_record, ensure, ensure_eq, ensure_err, given_token, given_user, new_token, new_user,
    CaseResult, Failure, NOW,
};
use mfad_core::audit::AuditQuery;
use mfad_core::model::{Challenge, ChallengeKind, PinMode};
use mfad_core::store::{CodeAttempt, FailureState, Store, UserUpdate};
use std::sync::Arc;

pub async fn created_user_reads_back_by_name_and_id(store: Arc<dyn Store>) -> CaseResult {
    let created = given_user(&*store, "alice").await?;
    let wanted = new_user("alice");
    ensure_eq!(created.username, "alice");
    ensure_eq!(created.given_name, wanted.given_name);
    ensure_eq!(created.surname, wanted.surname);
    ensure_eq!(created.email, wanted.email);
    ensure_eq!(created.phone, wanted.phone);
    ensure_eq!(created.pin_mode, PinMode::Standard);
    ensure!(created.enabled, "a new user is enabled");
    ensure_eq!((created.failures, created.locked_until), (0, None));
    ensure_eq!((created.blocked_until, created.bypass_until), (None, None));
    ensure_eq!(
        (created.pin_hash.clone(), created.pin_history.len()),
        (None, 0)
    );
    ensure_eq!(created.created_at, NOW);

    ensure_eq!(store.user_by_name("alice").await?, Some(created.clone()));
    ensure_eq!(store.user_by_id(created.id).await?, Some(created.clone()));
    ensure_eq!(store.user_by_name("nobody").await?, None);
    ensure_eq!(store.user_by_id(created.id + 1000).await?, None);
    Ok(())
}

pub async fn usernames_are_stored_lower_case(store: Arc<dyn Store>) -> CaseResult {
    let created = given_user(&*store, "Bob.Smith@Example.COM").await?;
    ensure_eq!(created.username, "bob.smith@example.com");
    let found = store.user_by_name("bob.smith@example.com").await?;
    ensure_eq!(found.map(|u| u.id), Some(created.id));
    let found = store.user_by_name("BOB.smith@example.com").await?;
    ensure_eq!(
        found.map(|u| u.id),
        Some(created.id),
        "lookups normalise the name too"
    );
    Ok(())
}

pub async fn duplicate_username_in_another_case_is_rejected(store: Arc<dyn Store>) -> CaseResult {
    given_user(&*store, "carol").await?;
    ensure_err!(store.create_user(&new_user("CAROL"), NOW).await, Duplicate);
    ensure_err!(store.create_user(&new_user("carol"), NOW).await, Duplicate);
    ensure_eq!(store.list_users().await?.len(), 1);
    // The failed insert must not disturb later writes.
    given_user(&*store, "dave").await?;
    ensure_eq!(store.list_users().await?.len(), 2);
    Ok(())
}

pub async fn users_are_listed_by_username(store: Arc<dyn Store>) -> CaseResult {
    for name in ["zed", "amy", "Mia"] {
        given_user(&*store, name).await?;
    }
    let names: Vec<String> = store
        .list_users()
        .await?
        .into_iter()
        .map(|u| u.username)
        .collect();
    ensure_eq!(names, ["amy", "mia", "zed"]);
    Ok(())
}

pub async fn update_changes_only_the_given_fields(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "erin").await?;
    let update = UserUpdate {
        email: Some("new@example.org".into()),
        pin_mode: Some(PinMode::Pin),
        enabled: Some(false),
        ..UserUpdate::default()
    };
    let updated = store.update_user(user.id, &update).await?;
    ensure_eq!(updated.email, "new@example.org");
    ensure_eq!(updated.pin_mode, PinMode::Pin);
    ensure!(!updated.enabled, "enabled was set to false");
    ensure_eq!(updated.given_name, user.given_name);
    ensure_eq!(updated.surname, user.surname);
    ensure_eq!(updated.phone, user.phone);
    ensure_eq!(store.user_by_id(user.id).await?, Some(updated.clone()));

    let unchanged = store.update_user(user.id, &UserUpdate::default()).await?;
    ensure_eq!(unchanged, updated);
    ensure_err!(store.update_user(user.id + 1000, &update).await, NotFound);
    Ok(())
}

pub async fn deleting_a_user_removes_their_tokens_challenges_and_cache(
    store: Arc<dyn Store>,
) -> CaseResult {
    let gone = given_user(&*store, "frank").await?;
    let kept = given_user(&*store, "grace").await?;
    given_token(&*store, "F1", Some(gone.id)).await?;
    given_token(&*store, "G1", Some(kept.id)).await?;
    for (state, user) in [(b"s-frank", gone.id), (b"s-grace", kept.id)] {
        store
            .put_challenge(&Challenge {
                state: state.to_vec(),
                user_id: user,
                client: "vpn".into(),
                kind: ChallengeKind::Otp,
                expires_at: NOW + 60,
            })
            .await?;
    }
    // Keys as the engine builds them: the user's id is one `:`-separated field.
    let gone_keys = [
        format!("u:{}", gone.id),
        format!("uc:{}:vpn", gone.id),
        format!("uci:{}:vpn:192.0.2.7", gone.id),
    ];
    let kept_key = format!("uc:{}:vpn", kept.id);
    for key in gone_keys.iter().chain([&kept_key]) {
        store.put_cached_auth(key, NOW + 60).await?;
    }

    store.delete_user(gone.id).await?;

    ensure_eq!(store.user_by_id(gone.id).await?, None);
    ensure!(
        store.token_by_serial("F1").await?.is_none(),
        "the user's token is deleted"
    );
    ensure!(
        store.take_challenge(b"s-frank", NOW).await?.is_none(),
        "challenge deleted"
    );
    for key in &gone_keys {
        ensure!(
            !store.cached_auth(key, NOW).await?,
            "cached success {key} deleted"
        );
    }

    ensure!(
        store.user_by_id(kept.id).await?.is_some(),
        "other users stay"
    );
    ensure!(
        store.token_by_serial("G1").await?.is_some(),
        "other tokens stay"
    );
    ensure!(
        store.take_challenge(b"s-grace", NOW).await?.is_some(),
        "other challenges stay"
    );
    ensure!(
        store.cached_auth(&kept_key, NOW).await?,
        "other cached successes stay"
    );
    ensure_err!(store.delete_user(gone.id).await, NotFound);
    Ok(())
}

pub async fn ids_of_deleted_users_and_tokens_are_never_reused(store: Arc<dyn Store>) -> CaseResult {
    let first = given_user(&*store, "ada").await?;
    let last = given_user(&*store, "bea").await?;
    let token = given_token(&*store, "OLD", Some(last.id)).await?;
    // Deleting the newest rows is what would let a plain rowid hand their ids out again.
    store.delete_user(last.id).await?;
    let next = given_user(&*store, "cleo").await?;
    let next_token = given_token(&*store, "NEW", Some(next.id)).await?;
    ensure!(
        next.id > last.id && last.id > first.id,
        "user ids only grow"
    );
    ensure!(next_token.id > token.id, "token ids only grow");
    Ok(())
}

pub async fn operations_on_a_missing_user_are_not_found(store: Arc<dyn Store>) -> CaseResult {
    let missing = given_user(&*store, "henry").await?.id + 1000;
    ensure_err!(
        store.set_block(missing, Some(NOW + 1), Some("x")).await,
        NotFound
    );
    ensure_err!(store.set_bypass(missing, Some(NOW + 1)).await, NotFound);
    ensure_err!(store.take_attempt(missing, NOW, 10, 60).await, NotFound);
    ensure_err!(store.release_attempt(missing).await, NotFound);
    ensure_err!(store.clear_failures(missing).await, NotFound);
    ensure_err!(store.set_pin(missing, Some("h"), false, 5).await, NotFound);
    ensure_err!(store.delete_user(missing).await, NotFound);
    ensure!(
        !matches!(store.consume_bypass(missing, NOW).await, Ok(true)),
        "a missing user has no bypass"
    );
    Ok(())
}

pub async fn block_lasts_until_its_time_and_can_be_lifted(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "ivan").await?;
    store
        .set_block(user.id, Some(NOW + 100), Some("fraud reported"))
        .await?;
    let blocked = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!(blocked.blocked_until, Some(NOW + 100));
    ensure_eq!(blocked.block_reason.as_deref(), Some("fraud reported"));
    ensure!(blocked.is_blocked(NOW + 99), "blocked before the time");
    ensure!(
        !blocked.is_blocked(NOW + 100),
        "not blocked from the time on"
    );

    store.set_block(user.id, None, Some("ignored")).await?;
    let lifted = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!((lifted.blocked_until, lifted.block_reason), (None, None));
    Ok(())
}

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

pub async fn pin_history_keeps_the_newest_hashes_first(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "olga").await?;
    for (n, hash) in ["h1", "h2", "h3", "h4"].into_iter().enumerate() {
        store.set_pin(user.id, Some(hash), n % 2 == 0, 3).await?;
    }
    let with_pin = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!(with_pin.pin_hash.as_deref(), Some("h4"));
    ensure!(!with_pin.pin_change_required, "the flag is the last call's");
    ensure_eq!(with_pin.pin_history, ["h4", "h3", "h2"]);

    store.set_pin(user.id, None, true, 3).await?;
    let without = store
        .user_by_id(user.id)
        .await?
        .ok_or_else(|| Failure::new("user gone"))?;
    ensure_eq!(without.pin_hash, None);
    ensure!(without.pin_change_required, "the flag is set");
    ensure_eq!(
        without.pin_history,
        ["h4", "h3", "h2"],
        "removing the PIN keeps the history"
    );
    Ok(())
}

pub async fn bulk_load_creates_users_with_their_tokens(store: Arc<dyn Store>) -> CaseResult {
    let batch: Vec<_> = (0..3)
        .map(|n| {
            let tokens = (0..=n)
                .map(|k| new_token(&format!("B{n}-{k}"), None))
                .collect();
            (new_user(&format!("Bulk{n}")), tokens)
        })
        .collect();
    ensure_eq!(store.create_users_with_tokens(&batch, NOW).await?, 3);
    for n in 0..3usize {
        let user = store
            .user_by_name(&format!("bulk{n}"))
            .await?
            .ok_or_else(|| Failure::new(format!("bulk{n} was not created")))?;
        let tokens = store.tokens_for_user(user.id).await?;
        ensure_eq!(tokens.len(), n + 1, "bulk{n}'s tokens");
        for token in tokens {
            let wanted = new_token(&token.serial, None);
            ensure_eq!(token.secret, wanted.secret, "secret of {}", token.serial);
            ensure_eq!(token.user_id, Some(user.id));
        }
    }
    Ok(())
}

pub async fn bulk_load_is_all_or_nothing(store: Arc<dyn Store>) -> CaseResult {
    let existing = given_user(&*store, "taken").await?;
    given_token(&*store, "USED", Some(existing.id)).await?;

    let duplicate_serial = vec![
        (new_user("p1"), vec![new_token("P1", None)]),
        (
            new_user("p2"),
            vec![new_token("P2", None), new_token("USED", None)],
        ),
    ];
    ensure_err!(
        store.create_users_with_tokens(&duplicate_serial, NOW).await,
        Duplicate
    );
    let duplicate_user = vec![
        (new_user("q1"), vec![new_token("Q1", None)]),
        (new_user("TAKEN"), vec![]),
    ];
    ensure_err!(
        store.create_users_with_tokens(&duplicate_user, NOW).await,
        Duplicate
    );

    let names: Vec<String> = store
        .list_users()
        .await?
        .into_iter()
        .map(|u| u.username)
        .collect();
    ensure_eq!(names, ["taken"]);
    let serials: Vec<String> = store
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| t.serial)
        .collect();
    ensure_eq!(serials, ["USED"]);
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
