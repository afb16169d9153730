//! The directory sync's pending phone changes as one JSON text column, written and read
//! the same way by both backends (the list is short and only ever read whole).

use mfad_core::store::{PendingPhone, StoreError, StoreResult};

pub(crate) fn encode(pending: &[PendingPhone]) -> StoreResult<String> {
    serde_json::to_string(pending)
        .map_err(|e| StoreError::Corrupt(format!("pending phone changes: {e}")))
}

pub(crate) fn decode(text: &str) -> StoreResult<Vec<PendingPhone>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("pending phone changes: {e}")))
}
