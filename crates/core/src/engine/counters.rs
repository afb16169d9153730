//! `mfad_auth_total`: the final outcomes, by channel, result, reason and method.

use crate::audit::{AuditRecord, AuditResult};
use std::collections::HashMap;
use std::sync::Mutex;

/// The counters' handles, found by their labels in one short key. The recorder's own
/// lookup of a labelled counter copies every label and hashes and compares them with
/// the name on each call, which costs more than the rest of counting an attempt. A
/// handle reports to the recorder installed when it was taken (`mfad serve` installs
/// it before it makes the engine).
#[derive(Default)]
pub(super) struct AuthCounters(Mutex<HashMap<String, metrics::Counter>>);

impl AuthCounters {
    /// Counts one final record.
    pub(super) fn count(&self, audit: &AuditRecord) {
        let labels = [
            audit.channel.as_str(),
            audit.result.map_or("", AuditResult::as_str),
            &audit.reason,
            &audit.method,
        ];
        // No label holds a line break: reasons and methods are words, channels too.
        let key = labels.join("\n");
        let mut counters = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let counter = counters.entry(key).or_insert_with(|| {
            let [channel, result, reason, method] = labels.map(str::to_owned);
            metrics::counter!(
                "mfad_auth_total",
                "channel" => channel,
                "result" => result,
                "reason" => reason,
                "method" => method
            )
        });
        counter.increment(1);
    }
}
