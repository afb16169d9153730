//! Conformance cases for whole-store export and import (`mfad store copy`, backups).

use super::{
    audit_record, ensure, ensure_eq, ensure_err, given_token, given_user, new_client, Backend,
    CaseResult, Failure, NOW,
};
use mfad_core::model::{Challenge, ChallengeKind};

pub async fn snapshot_copies_every_row_into_an_empty_store(
    backend: &mut dyn Backend,
) -> CaseResult {
    let source = backend.store();
    let alice = given_user(&*source, "alice").await?;
    let gone = given_user(&*source, "gone").await?;
    let token = given_token(&*source, "SNAP-1", Some(alice.id)).await?;
    given_token(&*source, "SNAP-SPARE", None).await?;
    ensure!(source.advance_token(token.id, 41).await?, "fresh counter");
    source.set_token_resync(token.id, Some(60)).await?;
    source
        .set_pin(alice.id, Some("$argon2id$pin-hash"), true, 5)
        .await?;
    source.record_failure(alice.id, NOW, 10, 60).await?;
    source
        .set_block(alice.id, Some(NOW + 99), Some("lost phone"))
        .await?;
    source.set_bypass(alice.id, Some(NOW + 300)).await?;
    source
        .create_client(&new_client("vpn", "10.0.0.0/8")?, NOW)
        .await?;
    source
        .put_challenge(&Challenge {
            state: vec![0, 1, 2, 254, 255],
            user_id: alice.id,
            client: "vpn".into(),
            kind: ChallengeKind::ConfirmPin {
                pin_hash: "$argon2id$first".into(),
            },
            expires_at: NOW + 120,
        })
        .await?;
    source
        .put_cached_auth(&format!("u:{}", alice.id), NOW + 60)
        .await?;
    for n in 0..3 {
        source
            .append_audit(audit_record(n, "alice", 1_700_000_000_000 + i64::from(n)))
            .await?;
    }
    source.delete_user(gone.id).await?;

    let snapshot = source.export_snapshot().await?;
    ensure_eq!(snapshot.users.len(), 1);
    ensure_eq!(snapshot.tokens.len(), 2);
    ensure_eq!(snapshot.challenges.len(), 1);
    ensure_eq!(snapshot.cached_auth.len(), 1);
    ensure_eq!(snapshot.audit.len(), 3);
    ensure!(
        snapshot.ids.users >= gone.id,
        "the deleted user's id is remembered: {:?}",
        snapshot.ids
    );
    let sealed = snapshot
        .tokens
        .iter()
        .find(|t| t.serial == "SNAP-1")
        .map(|t| t.secret.clone())
        .unwrap_or_default();
    ensure!(sealed.starts_with("v1:"), "secrets stay sealed: {sealed}");

    let target = backend.another().await?;
    target.import_snapshot(&snapshot).await?;
    ensure_eq!(
        target.export_snapshot().await?,
        snapshot,
        "the copy holds exactly the source's rows"
    );

    // The copy works like the source did.
    let (user, tokens) = target
        .auth_subject("alice")
        .await?
        .ok_or_else(|| Failure::new("alice missing from the copy"))?;
    ensure_eq!(user.failures, 1);
    ensure_eq!(user.pin_hash.as_deref(), Some("$argon2id$pin-hash"));
    let copied = tokens
        .first()
        .ok_or_else(|| Failure::new("token missing from the copy"))?;
    ensure_eq!(
        copied.secret,
        token.secret,
        "the sealed secret opens with the same key"
    );
    ensure!(
        !target.advance_token(token.id, 41).await?,
        "a code used before the copy stays used"
    );
    ensure!(
        target
            .take_challenge(&[0, 1, 2, 254, 255], NOW)
            .await?
            .is_some(),
        "the pending challenge moved too"
    );
    ensure!(
        target.cached_auth(&format!("u:{}", alice.id), NOW).await?,
        "the cached success moved too"
    );
    let new_user = given_user(&*target, "newcomer").await?;
    ensure!(
        new_user.id > gone.id,
        "ids handed out by the source are never reused by the copy ({} <= {})",
        new_user.id,
        gone.id
    );
    Ok(())
}

pub async fn snapshot_is_refused_by_a_store_that_holds_data(
    backend: &mut dyn Backend,
) -> CaseResult {
    let store = backend.store();
    given_user(&*store, "first").await?;
    let snapshot = store.export_snapshot().await?;
    ensure_err!(store.import_snapshot(&snapshot).await, Duplicate);
    ensure_eq!(store.list_users().await?.len(), 1, "nothing was added");
    Ok(())
}
