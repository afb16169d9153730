//! The conformance suite against PostgreSQL (a fresh database on the machine's server per
//! test), plus what only PostgreSQL has: store URLs, migrations by several nodes at once,
//! two stores (nodes) on one database, and copies between SQLite and PostgreSQL.

use async_trait::async_trait;
use mfad_core::store::{
    AuthStore, ClientStore, DirectoryStore, OutboxStore, SnapshotStore, Store, UserStore,
};
use mfad_store::conformance::{self, Backend, Failure};
use mfad_store::{Cipher, PgOptions, PgStore};
use mfad_testkit::PgDatabase;
use std::sync::Arc;
use tempfile::TempDir;

/// A fresh database (dropped with this) and a key file in a temporary directory.
struct PgBackend {
    dir: TempDir,
    db: PgDatabase,
    store: Arc<dyn Store>,
    others: Vec<(PgDatabase, Arc<dyn Store>)>,
}

fn cipher(dir: &TempDir) -> Result<Cipher, Failure> {
    Cipher::load_or_create(&dir.path().join("mfad.key")).map_err(|e| Failure::new(e.to_string()))
}

async fn open_store(dir: &TempDir, db: &PgDatabase) -> Result<Arc<dyn Store>, Failure> {
    Ok(Arc::new(
        PgStore::open(&db.url(), cipher(dir)?, PgOptions::default()).await?,
    ))
}

#[async_trait]
impl Backend for PgBackend {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    async fn reopen(&mut self) -> Result<Arc<dyn Store>, Failure> {
        self.store = open_store(&self.dir, &self.db).await?;
        Ok(Arc::clone(&self.store))
    }

    fn raw_bytes(&self) -> Result<Vec<u8>, Failure> {
        Ok(self.db.dump())
    }

    async fn another(&mut self) -> Result<Arc<dyn Store>, Failure> {
        let db = PgDatabase::create();
        let store = open_store(&self.dir, &db).await?;
        self.others.push((db, Arc::clone(&store)));
        Ok(store)
    }
}

async fn fresh() -> Result<PgBackend, Failure> {
    let dir = tempfile::tempdir()?;
    let db = PgDatabase::create();
    let store = open_store(&dir, &db).await?;
    Ok(PgBackend {
        dir,
        db,
        store,
        others: Vec::new(),
    })
}

mfad_store::conformance_tests!(fresh);

#[tokio::test]
async fn unreachable_database_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let url = "postgres://mfad:hunter2@127.0.0.1:1/mfad";
    let err = mfad_store::open(url, &dir.path().join("mfad.key"), Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot connect to postgres://mfad:***@127.0.0.1:1/mfad"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_opening_a_new_database_together_migrate_it_once() {
    let db = PgDatabase::create();
    let opens = (0..4).map(|_| {
        let url = db.url();
        tokio::spawn(async move {
            let cipher = Cipher::from_key(&[7; 32]);
            PgStore::open(&url, cipher, PgOptions::default())
                .await
                .map(drop)
        })
    });
    for open in opens.collect::<Vec<_>>() {
        open.await.unwrap().unwrap();
    }
    // Every migration ran once: the version is the number of migrations.
    assert_eq!(
        db.psql("SELECT version FROM mfad_schema").trim(),
        mfad_store::postgres::SCHEMA_VERSION.to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_see_each_others_writes_and_share_replay_protection() {
    let backend = fresh().await.unwrap();
    let node_a = backend.store();
    let node_b = open_store(&backend.dir, &backend.db).await.unwrap();
    let user = conformance::given_user(&*node_a, "shared").await.unwrap();
    let token = conformance::given_token(&*node_a, "SHARED-1", Some(user.id))
        .await
        .unwrap();
    let (_, tokens) = node_b.auth_subject("shared").await.unwrap().unwrap();
    assert_eq!(tokens.first().unwrap().secret, token.secret);
    // The same code on both nodes at once: exactly one wins.
    let (a, b) = tokio::join!(
        node_a.advance_token(token.id, 5),
        node_b.advance_token(token.id, 5)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one node accepts the code");
    assert!(
        !node_b.advance_token(token.id, 4).await.unwrap(),
        "never backward"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_move_between_sqlite_and_postgres_unchanged() {
    use mfad_store::{SqliteOptions, SqliteStore};
    let backend = fresh().await.unwrap();
    let pg = backend.store();
    let user = conformance::given_user(&*pg, "mover").await.unwrap();
    let token = conformance::given_token(&*pg, "MOVE-1", Some(user.id))
        .await
        .unwrap();
    assert!(pg.advance_token(token.id, 3).await.unwrap());
    pg.create_client(
        &conformance::new_client("vpn", "10.0.0.0/8").unwrap(),
        conformance::NOW,
    )
    .await
    .unwrap();
    pg.append_audit(conformance::audit_record(1, "mover", 1_700_000_000_000))
        .await
        .unwrap();
    // The directory, proxy, method and outbox columns and tables move too.
    pg.apply_directory_sync(
        &mfad_core::store::DirectorySync {
            add: vec![mfad_core::model::NewUser {
                directory_id: Some("entry-uuid-7".into()),
                sync_item: Some("cn=vpn-users".into()),
                method: mfad_core::model::Method::Call,
                backup_phone: "+15555550142".into(),
                ..conformance::new_user("synced")
            }],
            ..Default::default()
        },
        conformance::NOW,
    )
    .await
    .unwrap();
    let mut proxy = conformance::new_client("proxy", "192.0.2.0/24").unwrap();
    proxy.first_factor = mfad_core::model::FirstFactor::Radius;
    proxy.targets = vec!["primary".into(), "backup".into()];
    pg.create_client(&proxy, conformance::NOW).await.unwrap();
    pg.put_sync_state(&mfad_core::store::SyncState {
        last_run: Some(conformance::NOW),
        last_summary: "1 added".into(),
        pending_count: 1,
        pending_reason: "held".into(),
        approved_count: None,
        pending_phones: Vec::new(),
    })
    .await
    .unwrap();
    assert!(pg
        .acquire_sync_lock("node-a", conformance::NOW, conformance::NOW + 60)
        .await
        .unwrap());
    pg.queue_email(
        &mfad_core::outbox::NewEmail {
            user_id: Some(user.id),
            recipient: "mover@example.org".into(),
            kind: mfad_core::outbox::EmailKind::Welcome,
            subject: "Welcome".into(),
            body: zeroize::Zeroizing::new("your PIN is 1357".into()),
            once_key: Some(format!("welcome:{}", user.id)),
        },
        conformance::NOW,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(pg
        .take_rate("call:user:1", conformance::NOW, 60, 3)
        .await
        .unwrap());
    let from_pg = pg.export_snapshot().await.unwrap();
    assert_eq!(from_pg.emails.len(), 1);
    assert_eq!(from_pg.rate_limits.len(), 1);
    assert_eq!(
        from_pg.directory_sync.lock_holder.as_deref(),
        Some("node-a")
    );

    let sqlite = SqliteStore::open(
        &backend.dir.path().join("copy.db"),
        cipher(&backend.dir).unwrap(),
        SqliteOptions::default(),
    )
    .unwrap();
    sqlite.import_snapshot(&from_pg).await.unwrap();
    let from_sqlite = sqlite.export_snapshot().await.unwrap();
    assert_eq!(from_sqlite, from_pg);
    assert_eq!(
        sqlite.list_users().await.unwrap(),
        pg.list_users().await.unwrap()
    );
    assert_eq!(
        sqlite.list_clients().await.unwrap(),
        pg.list_clients().await.unwrap()
    );
    assert_eq!(
        sqlite.sync_state().await.unwrap(),
        pg.sync_state().await.unwrap()
    );
    let claimed = sqlite
        .claim_emails(conformance::NOW, conformance::NOW + 60, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.first().map(|e| e.body.as_str()),
        Some("your PIN is 1357"),
        "the sealed body opens after the move"
    );
    let (_, tokens) = sqlite.auth_subject("mover").await.unwrap().unwrap();
    assert_eq!(tokens.first().unwrap().secret, token.secret);
    let clients = sqlite.list_clients().await.unwrap();
    let vpn = clients.iter().find(|c| c.name == "vpn").unwrap();
    assert_eq!(vpn.secret, "shared secret of vpn");
    let proxy = clients.iter().find(|c| c.name == "proxy").unwrap();
    assert_eq!(proxy.targets, ["primary", "backup"]);

    let back = PgDatabase::create();
    let pg_again = open_store(&backend.dir, &back).await.unwrap();
    pg_again.import_snapshot(&from_sqlite).await.unwrap();
    assert_eq!(pg_again.export_snapshot().await.unwrap(), from_pg);
}

/// Lookups that share a batch share one statement, not their failures: a user whose token
/// cannot be read fails alone, and every other user of the batch gets their own record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batched_lookup_with_an_unreadable_token_fails_only_that_user() {
    let backend = fresh().await.unwrap();
    let store = backend.store();
    let names: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
    for name in &names {
        let user = store
            .create_user(&conformance::new_user(name), conformance::NOW)
            .await
            .unwrap();
        store
            .create_tokens(
                &[conformance::new_token(&format!("K-{name}"), Some(user.id))],
                conformance::NOW,
            )
            .await
            .unwrap();
    }
    backend
        .db
        .psql("UPDATE tokens SET secret = 'not a sealed value' WHERE serial = 'K-user7'");

    let lookups: Vec<_> = names
        .iter()
        .cycle()
        .take(400)
        .map(|name| {
            let (store, name) = (Arc::clone(&store), name.clone());
            tokio::spawn(async move { (name.clone(), store.auth_subject(&name).await) })
        })
        .collect();
    for lookup in lookups {
        let (name, found) = lookup.await.unwrap();
        if name == "user7" {
            assert!(
                matches!(found, Err(mfad_core::store::StoreError::Corrupt(_))),
                "{found:?}"
            );
            continue;
        }
        let (user, tokens) = found.unwrap().unwrap();
        assert_eq!(user.username, name);
        let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
        assert_eq!(serials, [format!("K-{name}")]);
    }
    assert!(store.auth_subject("nobody").await.unwrap().is_none());
}
