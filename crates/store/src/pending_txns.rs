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
