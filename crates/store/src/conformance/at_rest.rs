//! Conformance cases about what is on disk: sealed secrets, and data that outlives
//! the process that wrote it.

use super::{
    audit_record, ensure, ensure_eq, given_user, new_client, new_token, Backend, CaseResult,
    Failure, NOW,
};
use data_encoding::{BASE32_NOPAD, BASE64, HEXLOWER};
use mfad_core::audit::AuditQuery;
use mfad_core::model::{NewToken, Secret};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub async fn secrets_are_not_stored_in_plaintext(backend: &mut dyn Backend) -> CaseResult {
    let store = backend.store();
    let seed = b"PLAINTEXT-SEED-4f1c2a9b".to_vec();
    let token = NewToken {
        secret: Secret::new(seed.clone()),
        ..new_token("AT-REST-1", None)
    };
    store.create_tokens(&[token], NOW).await?;
    let mut client = new_client("at-rest-client", "192.0.2.0/24")?;
    client.secret = "SHARED-SECRET-77d0e3".into();
    store.create_client(&client, NOW).await?;
    store.flush().await?;

    let raw = backend.raw_bytes()?;
    ensure!(
        contains(&raw, b"AT-REST-1"),
        "the dump holds the data (serial found)"
    );
    for (what, needle) in [
        ("token seed", seed.clone()),
        ("token seed as hex", HEXLOWER.encode(&seed).into_bytes()),
        (
            "token seed as base32",
            BASE32_NOPAD.encode(&seed).into_bytes(),
        ),
        ("token seed as base64", BASE64.encode(&seed).into_bytes()),
        ("client secret", client.secret.clone().into_bytes()),
    ] {
        ensure!(
            !contains(&raw, &needle),
            "the {what} is stored in plaintext"
        );
    }
    let read = store.token_by_serial("AT-REST-1").await?.map(|t| t.secret);
    ensure_eq!(read, Some(Secret::new(seed)), "and it still reads back");
    Ok(())
}

pub async fn data_survives_reopening(backend: &mut dyn Backend) -> CaseResult {
    let store = backend.store();
    let user = given_user(&*store, "durable").await?;
    let created = store
        .create_tokens(
            &[NewToken {
                next: 10,
                ..new_token("DUR-1", Some(user.id))
            }],
            NOW,
        )
        .await?;
    let token = created
        .first()
        .ok_or_else(|| Failure::new("no token"))?
        .clone();
    store
        .create_client(&new_client("dur-vpn", "10.1.0.0/16")?, NOW)
        .await?;
    store.take_attempt(user.id, NOW, 10, 60).await?;
    store.set_bypass(user.id, Some(NOW + 300)).await?;
    // The answer `true` is the promise: the code is used even if the server dies now.
    ensure!(store.advance_token(token.id, 12).await?, "fresh code");
    store
        .append_audit(audit_record(1, "durable", 1_700_000_000_000))
        .await?;
    store.flush().await?;
    drop(store);

    let store = backend.reopen().await?;
    let (found, tokens) = store
        .auth_subject("durable")
        .await?
        .ok_or_else(|| Failure::new("user lost on reopen"))?;
    ensure_eq!(found.failures, 1);
    ensure_eq!(found.bypass_until, Some(NOW + 300));
    let reread = tokens
        .first()
        .ok_or_else(|| Failure::new("token lost on reopen"))?;
    ensure_eq!(
        reread.secret,
        token.secret,
        "the secret opens after a restart"
    );
    ensure_eq!(reread.next, 13);
    ensure!(
        !store.advance_token(token.id, 12).await?,
        "a used code stays used after a restart"
    );
    ensure_eq!(store.list_clients().await?.len(), 1);
    ensure_eq!(store.query_audit(&AuditQuery::default()).await?.len(), 1);
    Ok(())
}
