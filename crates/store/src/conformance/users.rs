//! Conformance cases for users: records, block, PINs, the method and bulk load.

use super::{
    ensure, ensure_eq, ensure_err, given_token, given_user, new_token, new_user, CaseResult,
    Failure, NOW,
};
use mfad_core::model::{Challenge, ChallengeKind, Method, PinMode};
use mfad_core::store::{Store, UserUpdate};
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

pub async fn user_method_is_stored_and_updated(store: Arc<dyn Store>) -> CaseResult {
    let mut new = super::new_user("sven");
    new.method = Method::Sms;
    new.backup_phone = "+14255550111".into();
    let user = store.create_user(&new, NOW).await?;
    ensure_eq!(user.method, Method::Sms);
    ensure_eq!(user.backup_phone, "+14255550111");
    let update = UserUpdate {
        method: Some(Method::Call),
        backup_phone: Some("+442079460018".into()),
        ..UserUpdate::default()
    };
    let updated = store.update_user(user.id, &update).await?;
    ensure_eq!(updated.method, Method::Call);
    ensure_eq!(updated.backup_phone, "+442079460018");
    ensure_eq!(updated.phone, user.phone, "other fields stay");
    let subject = store.auth_subject("sven").await?;
    ensure_eq!(subject.map(|(u, _)| u.method), Some(Method::Call));
    ensure_eq!(
        given_user(&*store, "tina").await?.method,
        Method::App,
        "the default method is the app"
    );
    Ok(())
}
