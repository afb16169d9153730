//! Conformance cases for whole-store export and import (`mfad store copy`, backups).

use super::{
    audit_record, ensure, ensure_eq, ensure_err, given_token, given_user, new_client, Backend,
    CaseResult, Failure, NOW,
};
use mfad_core::model::{Challenge, ChallengeKind, FirstFactor, Method, NewUser};
use mfad_core::outbox::{Attempt, EmailKind, NewEmail};
use mfad_core::store::{DirectorySync, PendingPhone, SyncState, UserUpdate};
use zeroize::Zeroizing;

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
    source.take_attempt(alice.id, NOW, 10, 60).await?;
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
    // The columns and tables the directory, proxy and outbox features added.
    source
        .update_user(
            alice.id,
            &UserUpdate {
                method: Some(Method::Call),
                backup_phone: Some("+15555550199".into()),
                ..UserUpdate::default()
            },
        )
        .await?;
    source
        .apply_directory_sync(
            &DirectorySync {
                add: vec![NewUser {
                    directory_id: Some("entry-uuid-1".into()),
                    sync_item: Some("ou=staff".into()),
                    method: Method::Sms,
                    ..super::new_user("dora")
                }],
                ..DirectorySync::default()
            },
            NOW,
        )
        .await?;
    let sync = SyncState {
        last_run: Some(NOW),
        last_summary: "1 added".into(),
        pending_count: 2,
        pending_reason: "more than 10 % would be disabled".into(),
        approved_count: Some(5),
        pending_phones: vec![PendingPhone {
            user_id: alice.id,
            username: "alice".into(),
            email: "alice@example.org".into(),
            old_phone: "+15550000001".into(),
            new_phone: "+15559999999".into(),
            since: NOW,
        }],
    };
    source.put_sync_state(&sync).await?;
    ensure!(
        source.acquire_sync_lock("node-a", NOW, NOW + 600).await?,
        "the free lock is taken"
    );
    let mut proxy = new_client("proxy", "192.0.2.0/24")?;
    proxy.first_factor = FirstFactor::Radius;
    proxy.targets = vec!["primary".into(), "backup".into()];
    source.create_client(&proxy, NOW).await?;
    let mail = |key: &str| NewEmail {
        user_id: Some(alice.id),
        recipient: "alice@example.org".into(),
        kind: EmailKind::Welcome,
        subject: "Welcome".into(),
        body: Zeroizing::new(format!("{key}: your PIN is 2468")),
        once_key: Some(key.into()),
    };
    let sent = source
        .queue_email(&mail("welcome:sent"), NOW)
        .await?
        .ok_or_else(|| Failure::new("first mail not queued"))?;
    source
        .queue_email(&mail("welcome:queued"), NOW)
        .await?
        .ok_or_else(|| Failure::new("second mail not queued"))?;
    source
        .finish_email(sent.id, &Attempt::Sent { at: NOW + 1 })
        .await?;
    ensure!(
        source.take_rate("sms:user:1", NOW, 3600, 2).await?,
        "first use"
    );
    ensure!(
        source.take_rate("sms:user:1", NOW, 3600, 2).await?,
        "second use"
    );
    source
        .put_setting("policy.max_failures", "5", false, NOW)
        .await?;
    source
        .put_setting("sms.twilio.auth_token", "copied-token-0c5e", true, NOW)
        .await?;

    let snapshot = source.export_snapshot().await?;
    ensure_eq!(snapshot.users.len(), 2);
    ensure_eq!(snapshot.settings.len(), 2);
    ensure!(
        snapshot
            .settings
            .iter()
            .all(|s| !s.secret || s.value.starts_with("v1:")),
        "secret settings stay sealed in a snapshot"
    );
    ensure_eq!(snapshot.emails.len(), 2);
    ensure_eq!(snapshot.rate_limits.len(), 1);
    ensure_eq!(
        snapshot.directory_sync.lock_holder.as_deref(),
        Some("node-a")
    );
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
    // The newer columns and tables read back the same.
    ensure_eq!(target.list_users().await?, source.list_users().await?);
    ensure_eq!(target.list_clients().await?, source.list_clients().await?);
    ensure_eq!(target.sync_state().await?, sync);
    ensure!(
        !target.acquire_sync_lock("node-b", NOW, NOW + 600).await?,
        "the lock moved with its holder"
    );
    ensure_eq!(target.list_emails(10).await?, source.list_emails(10).await?);
    ensure_eq!(
        target.list_settings().await?,
        source.list_settings().await?,
        "settings moved, the secret one opening with the same key"
    );
    let queued = target.claim_emails(NOW, NOW + 60, 10).await?;
    ensure_eq!(queued.len(), 1, "only the unsent mail is claimed");
    ensure_eq!(
        queued.first().map(|e| e.body.as_str().to_owned()),
        Some("welcome:queued: your PIN is 2468".to_owned()),
        "the sealed body opens in the copy"
    );
    ensure!(
        target
            .queue_email(&mail("welcome:sent"), NOW)
            .await?
            .is_none(),
        "a once-key used before the copy stays used"
    );
    ensure!(
        !target.take_rate("sms:user:1", NOW, 3600, 2).await?,
        "the rate limit's count moved too"
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
