//! Conformance cases for tokens: creation, secrets, assignment and removal.

use super::{
    ensure, ensure_eq, ensure_err, given_token, given_user, new_token, CaseResult, Failure, NOW,
};
use mfad_core::model::{NewToken, Secret};
use mfad_core::otp::{Algorithm, OtpKind};
use mfad_core::store::Store;
use std::sync::Arc;

pub async fn tokens_are_found_by_serial_owner_and_in_the_list(store: Arc<dyn Store>) -> CaseResult {
    let user = given_user(&*store, "sam").await?;
    let totp = NewToken {
        serial: "TOTP-1".into(),
        user_id: Some(user.id),
        kind: OtpKind::Totp,
        algorithm: Algorithm::Sha512,
        digits: 8,
        period: 60,
        secret: Secret::new(vec![7; 64]),
        next: 0,
    };
    let created = store
        .create_tokens(&[new_token("HOTP-2", None), totp.clone()], NOW)
        .await?;
    ensure_eq!(created.len(), 2);
    let stored = created
        .iter()
        .find(|t| t.serial == "TOTP-1")
        .ok_or_else(|| Failure::new("TOTP-1 missing from the result"))?;
    ensure_eq!(
        (
            stored.user_id,
            stored.kind,
            stored.algorithm,
            stored.digits,
            stored.period
        ),
        (Some(user.id), OtpKind::Totp, Algorithm::Sha512, 8, 60)
    );
    ensure_eq!(
        (stored.next, stored.resync, stored.enabled),
        (0, None, true)
    );
    ensure_eq!(stored.created_at, NOW);
    ensure!(created.iter().all(|t| t.id != 0), "ids are assigned");
    ensure!(
        created.first().map(|t| t.id) != created.get(1).map(|t| t.id),
        "ids differ: {created:?}"
    );

    ensure_eq!(
        store.token_by_serial("TOTP-1").await?.as_ref(),
        Some(stored)
    );
    ensure_eq!(store.token_by_serial("nope").await?, None);
    ensure_eq!(store.tokens_for_user(user.id).await?, vec![stored.clone()]);
    let serials: Vec<String> = store
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| t.serial)
        .collect();
    ensure_eq!(serials, ["HOTP-2", "TOTP-1"]);
    Ok(())
}

pub async fn token_secrets_round_trip(store: Arc<dyn Store>) -> CaseResult {
    let every_byte: Vec<u8> = (0..=255).collect();
    let tokens = [
        NewToken {
            secret: Secret::new(every_byte.clone()),
            ..new_token("ALL", None)
        },
        NewToken {
            secret: Secret::new(vec![0; 20]),
            ..new_token("ZERO", None)
        },
        new_token("TEXT", None),
    ];
    let created = store.create_tokens(&tokens, NOW).await?;
    for wanted in &tokens {
        let read = store
            .token_by_serial(&wanted.serial)
            .await?
            .ok_or_else(|| Failure::new(format!("{} missing", wanted.serial)))?;
        ensure_eq!(read.secret, wanted.secret, "secret of {}", wanted.serial);
        let returned = created
            .iter()
            .find(|t| t.serial == wanted.serial)
            .map(|t| &t.secret);
        ensure_eq!(
            returned,
            Some(&wanted.secret),
            "create_tokens returns the secret"
        );
    }
    Ok(())
}

pub async fn duplicate_serial_fails_the_whole_call(store: Arc<dyn Store>) -> CaseResult {
    given_token(&*store, "T1", None).await?;
    let with_stored = [new_token("T2", None), new_token("T1", None)];
    ensure_err!(store.create_tokens(&with_stored, NOW).await, Duplicate);
    let within = [
        new_token("T3", None),
        new_token("T4", None),
        new_token("T3", None),
    ];
    ensure_err!(store.create_tokens(&within, NOW).await, Duplicate);
    let serials: Vec<String> = store
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| t.serial)
        .collect();
    ensure_eq!(serials, ["T1"], "no token of a failed call was kept");
    Ok(())
}

pub async fn token_for_a_missing_user_is_rejected(store: Arc<dyn Store>) -> CaseResult {
    let missing = given_user(&*store, "tara").await?.id + 1000;
    let result = store
        .create_tokens(&[new_token("ORPHAN", Some(missing))], NOW)
        .await;
    ensure!(
        result.is_err(),
        "a token cannot belong to a missing user: {result:?}"
    );
    ensure_eq!(store.token_by_serial("ORPHAN").await?, None);
    Ok(())
}

pub async fn tokens_can_be_reassigned_and_deleted(store: Arc<dyn Store>) -> CaseResult {
    let first = given_user(&*store, "uma").await?;
    let second = given_user(&*store, "vera").await?;
    let token = given_token(&*store, "MOVE", Some(first.id)).await?;

    store.assign_token(token.id, Some(second.id)).await?;
    ensure_eq!(store.tokens_for_user(first.id).await?.len(), 0);
    ensure_eq!(store.tokens_for_user(second.id).await?.len(), 1);
    store.assign_token(token.id, None).await?;
    let unassigned = store.token_by_serial("MOVE").await?.map(|t| t.user_id);
    ensure_eq!(unassigned, Some(None));
    ensure_err!(
        store.assign_token(token.id, Some(second.id + 1000)).await,
        NotFound
    );
    ensure_err!(
        store.assign_token(token.id + 1000, Some(second.id)).await,
        NotFound
    );

    store.delete_token(token.id).await?;
    ensure_eq!(store.token_by_serial("MOVE").await?, None);
    ensure_err!(store.delete_token(token.id).await, NotFound);
    Ok(())
}
