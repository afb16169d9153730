//! Conformance cases for stored settings: put, replace, delete, the version nodes poll,
//! and secret values sealed at rest.

use super::{contains, ensure, ensure_eq, ensure_err, Backend, CaseResult, NOW};
use mfad_core::store::Store;
use std::sync::Arc;

pub async fn settings_are_put_listed_by_key_replaced_and_deleted(
    store: Arc<dyn Store>,
) -> CaseResult {
    ensure!(store.list_settings().await?.is_empty(), "none at first");
    store
        .put_setting("portal.url", "\"https://a\"", false, NOW)
        .await?;
    store
        .put_setting("policy.max_failures", "5", false, NOW)
        .await?;
    let keys: Vec<String> = store
        .list_settings()
        .await?
        .into_iter()
        .map(|s| s.key)
        .collect();
    ensure_eq!(keys, vec!["policy.max_failures", "portal.url"], "by key");

    store
        .put_setting("policy.max_failures", "3", false, NOW + 10)
        .await?;
    let settings = store.list_settings().await?;
    let max = settings
        .iter()
        .find(|s| s.key == "policy.max_failures")
        .ok_or("the setting is gone")?;
    ensure_eq!(max.value, "3", "a put replaces the value");
    ensure_eq!(max.updated_at, NOW + 10);
    ensure!(!max.secret, "a plain setting");
    ensure_eq!(settings.len(), 2, "no second row for the same key");

    store.delete_setting("portal.url").await?;
    ensure_eq!(store.list_settings().await?.len(), 1);
    ensure_err!(store.delete_setting("portal.url").await, NotFound);
    Ok(())
}

pub async fn settings_version_moves_on_every_change(store: Arc<dyn Store>) -> CaseResult {
    let v0 = store.settings_version().await?;
    ensure_eq!(
        store.settings_version().await?,
        v0,
        "reading changes nothing"
    );
    store
        .put_setting("policy.totp_skew", "2", false, NOW)
        .await?;
    let v1 = store.settings_version().await?;
    ensure!(v1 != v0, "a put moves the version");
    store
        .put_setting("policy.totp_skew", "2", false, NOW)
        .await?;
    let v2 = store.settings_version().await?;
    ensure!(v2 != v1, "so does putting the same value again");
    store.delete_setting("policy.totp_skew").await?;
    let v3 = store.settings_version().await?;
    ensure!(v3 != v2 && v3 != v0, "and a delete");
    ensure_err!(store.delete_setting("policy.totp_skew").await, NotFound);
    ensure_eq!(
        store.settings_version().await?,
        v3,
        "a delete of nothing does not"
    );
    Ok(())
}

pub async fn secret_settings_are_sealed_at_rest(backend: &mut dyn Backend) -> CaseResult {
    let store = backend.store();
    let token = "PLAINTEXT-TWILIO-TOKEN-93be1f";
    store
        .put_setting("sms.twilio.auth_token", token, true, NOW)
        .await?;
    store
        .put_setting("sms.twilio.account_sid", "\"AC-VISIBLE-5d2a\"", false, NOW)
        .await?;
    let raw = backend.raw_bytes()?;
    ensure!(
        contains(&raw, b"AC-VISIBLE-5d2a"),
        "the dump holds the settings (plain value found)"
    );
    ensure!(
        !contains(&raw, token.as_bytes()),
        "the secret setting is stored in plaintext"
    );
    let settings = store.list_settings().await?;
    let secret = settings
        .iter()
        .find(|s| s.key == "sms.twilio.auth_token")
        .ok_or("the secret setting is missing")?;
    ensure!(secret.secret, "it is marked secret");
    ensure_eq!(secret.value, token, "and opens to the value that was put");
    ensure!(
        !format!("{secret:?}").contains(token),
        "its Debug form hides the value"
    );

    // Replaced by a plain value, the row is no longer secret.
    store
        .put_setting("sms.twilio.auth_token", "plain", false, NOW)
        .await?;
    let replaced = store.list_settings().await?;
    ensure!(
        replaced
            .iter()
            .any(|s| s.key == "sms.twilio.auth_token" && !s.secret && s.value == "plain"),
        "a plain put replaces a secret one"
    );
    Ok(())
}
