//! Pending out-of-band transactions as both backends keep them: the draft audit record
//! and the prompt as one JSON text, the decision as another (NULL until decided).

use mfad_core::audit::AuditRecord;
use mfad_core::engine::Prompt;
use mfad_core::store::{Decision, PendingTxn, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

/// What does not change while the transaction waits.
#[derive(Serialize, Deserialize)]
struct Body {
    draft: AuditRecord,
    prompt: Prompt,
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("pending transaction {what}: {e}"))
}

pub(crate) fn encode_body(pending: &PendingTxn) -> StoreResult<String> {
    let body = Body {
        draft: pending.draft.clone(),
        prompt: pending.prompt.clone(),
    };
    serde_json::to_string(&body).map_err(|e| corrupt("body", e))
}

pub(crate) fn encode_decision(decision: &Decision) -> StoreResult<String> {
    serde_json::to_string(decision).map_err(|e| corrupt("decision", e))
}

/// A row back as the transaction.
pub(crate) fn decode(
    txn: &[u8],
    body: &str,
    decision: Option<&str>,
    expires_at: i64,
) -> StoreResult<PendingTxn> {
    let Body { draft, prompt } = serde_json::from_str(body).map_err(|e| corrupt("body", e))?;
    let decision = decision
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt("decision", e))?;
    Ok(PendingTxn {
        txn: txn.to_vec(),
        draft,
        prompt,
        decision,
        expires_at,
    })
}

/// The audit records of swept rows (`txn`, body, decision, expiry): each one's
/// [`PendingTxn::unfinished_record`]. A row that cannot be read is named in the log and
/// swept without a record, rather than kept forever.
pub(crate) fn unfinished_records(
    rows: impl IntoIterator<Item = (Vec<u8>, String, Option<String>, i64)>,
) -> Vec<AuditRecord> {
    rows.into_iter()
        .filter_map(|(txn, body, decision, expires_at)| {
            match decode(&txn, &body, decision.as_deref(), expires_at) {
                Ok(pending) => Some(pending.unfinished_record()),
                Err(e) => {
                    tracing::error!(
                        "an expired pending login could not be read, so it has no audit record: {e}"
                    );
                    None
                }
            }
        })
        .collect()
}
