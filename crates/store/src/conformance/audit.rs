//! Conformance cases for the audit log: queued appends, queries and purge.

use super::{audit_record, ensure_eq, CaseResult};
use mfad_core::audit::{AuditQuery, AuditRecord};
use mfad_core::store::Store;
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;

fn ids(records: &[AuditRecord]) -> Vec<String> {
    records.iter().map(|r| r.device.clone()).collect()
}

pub async fn audit_records_round_trip_after_flush(store: Arc<dyn Store>) -> CaseResult {
    let mut records: Vec<AuditRecord> = (0..3)
        .map(|n| audit_record(n, "alice", T0 + i64::from(n)))
        .collect();
    if let Some(last) = records.last_mut() {
        last.result = None;
        last.calling_station = "203.0.113.9".into();
    }
    for record in &records {
        store.append_audit(record.clone()).await?;
    }
    store.flush().await?;
    let read = store.query_audit(&AuditQuery::default()).await?;
    records.reverse();
    ensure_eq!(read, records, "every field, newest first");
    Ok(())
}

pub async fn audit_query_filters_by_user_time_and_limit(store: Arc<dyn Store>) -> CaseResult {
    // T0: alice; T0+1: bob; ... alternating, with two records sharing T0+10.
    for n in 0..10u32 {
        let user = if n % 2 == 0 { "alice" } else { "bob" };
        store
            .append_audit(audit_record(n, user, T0 + i64::from(n)))
            .await?;
    }
    store
        .append_audit(audit_record(10, "alice", T0 + 10))
        .await?;
    store
        .append_audit(audit_record(11, "alice", T0 + 10))
        .await?;
    store.flush().await?;

    let all = store.query_audit(&AuditQuery::default()).await?;
    ensure_eq!(all.len(), 12);
    ensure_eq!(
        ids(all.get(..3).unwrap_or_default()),
        ["T11", "T10", "T9"],
        "newest first, later insert first on equal times"
    );

    let query = AuditQuery {
        username: Some("bob".into()),
        ..AuditQuery::default()
    };
    ensure_eq!(
        ids(&store.query_audit(&query).await?),
        ["T9", "T7", "T5", "T3", "T1"]
    );

    let query = AuditQuery {
        since_ms: Some(T0 + 8),
        ..AuditQuery::default()
    };
    ensure_eq!(
        ids(&store.query_audit(&query).await?),
        ["T11", "T10", "T9", "T8"]
    );

    let query = AuditQuery {
        limit: Some(2),
        ..AuditQuery::default()
    };
    ensure_eq!(ids(&store.query_audit(&query).await?), ["T11", "T10"]);

    let query = AuditQuery {
        username: Some("alice".into()),
        since_ms: Some(T0 + 4),
        limit: Some(3),
    };
    ensure_eq!(ids(&store.query_audit(&query).await?), ["T11", "T10", "T8"]);

    let query = AuditQuery {
        username: Some("nobody".into()),
        ..AuditQuery::default()
    };
    ensure_eq!(store.query_audit(&query).await?.len(), 0);
    Ok(())
}

pub async fn purge_removes_only_older_records(store: Arc<dyn Store>) -> CaseResult {
    for n in 0..6u32 {
        store
            .append_audit(audit_record(n, "carl", T0 + i64::from(n) * 1000))
            .await?;
    }
    store.flush().await?;
    ensure_eq!(
        store.purge_audit(T0 + 3000).await?,
        3,
        "records before the time go"
    );
    let left = store.query_audit(&AuditQuery::default()).await?;
    ensure_eq!(
        ids(&left),
        ["T5", "T4", "T3"],
        "the record at the time stays"
    );
    ensure_eq!(store.purge_audit(T0).await?, 0);
    Ok(())
}

pub async fn purge_of_many_records_removes_them_all(store: Arc<dyn Store>) -> CaseResult {
    let count = 12_345u32;
    for n in 0..count {
        store
            .append_audit(audit_record(n, "dora", T0 + i64::from(n)))
            .await?;
    }
    store.flush().await?;
    store
        .append_audit(audit_record(count, "dora", T0 + 100_000))
        .await?;
    ensure_eq!(store.purge_audit(T0 + 100_000).await?, u64::from(count));
    let left = store.query_audit(&AuditQuery::default()).await?;
    ensure_eq!(ids(&left), [format!("T{count}")]);
    Ok(())
}
