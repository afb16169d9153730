//! The conformance suite against SQLite, plus what only SQLite has: the key file, file
//! modes, store URLs, group commit and a second process writing the same file.

use async_trait::async_trait;
use mfad_core::audit::AuditQuery;
use mfad_core::model::{Challenge, ChallengeKind};
use mfad_core::store::{AuditStore, Store, StoreError, UserStore};
use mfad_store::conformance::{self, Backend, Failure};
use mfad_store::{Cipher, OpenOptions, SqliteOptions, SqliteStore, Synchronous};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

/// A fresh database and key file in a temporary directory.
struct SqliteBackend {
    dir: TempDir,
    store: Arc<dyn Store>,
    /// Stores made by `another`, each in its own directory with a copy of the key.
    others: Vec<(TempDir, Arc<dyn Store>)>,
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("data").join("mfad.db")
}

fn key_path(dir: &TempDir) -> PathBuf {
    dir.path().join("mfad.key")
}

fn open_store(dir: &TempDir) -> Result<Arc<dyn Store>, Failure> {
    let cipher = Cipher::load_or_create(&key_path(dir)).map_err(|e| Failure::new(e.to_string()))?;
    let store = SqliteStore::open(&db_path(dir), cipher, SqliteOptions::default())?;
    Ok(Arc::new(store))
}

#[async_trait]
impl Backend for SqliteBackend {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    async fn reopen(&mut self) -> Result<Arc<dyn Store>, Failure> {
        // Replacing the handle drops the old store, which stops its threads after
        // committing what was queued.
        self.store = open_store(&self.dir)?;
        Ok(Arc::clone(&self.store))
    }

    fn raw_bytes(&self) -> Result<Vec<u8>, Failure> {
        // Recent commits may still be only in the write-ahead log.
        let mut bytes = std::fs::read(db_path(&self.dir))?;
        let mut wal = db_path(&self.dir).into_os_string();
        wal.push("-wal");
        if let Ok(log) = std::fs::read(wal) {
            bytes.extend_from_slice(&log);
        }
        Ok(bytes)
    }

    async fn another(&mut self) -> Result<Arc<dyn Store>, Failure> {
        let dir = tempfile::tempdir()?;
        std::fs::copy(key_path(&self.dir), key_path(&dir))?;
        let store = open_store(&dir)?;
        self.others.push((dir, Arc::clone(&store)));
        Ok(store)
    }
}

async fn fresh() -> Result<SqliteBackend, Failure> {
    let dir = tempfile::tempdir()?;
    let store = open_store(&dir)?;
    Ok(SqliteBackend {
        dir,
        store,
        others: Vec::new(),
    })
}

mfad_store::conformance_tests!(fresh);

fn mode_of(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[test]
fn key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("mfad.key");
    let created = Cipher::load_or_create(&path).unwrap();
    assert_eq!(mode_of(&path).unwrap(), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64, "64 hex digits: {text:?}");
    assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    let loaded = Cipher::load_or_create(&path).unwrap();
    assert_eq!(loaded.key_id(), created.key_id());
    let sealed = created.encrypt(b"seed", b"row").unwrap();
    assert_eq!(loaded.decrypt(&sealed, b"row").unwrap().as_slice(), b"seed");
    // A later process sees no leftovers of the creation.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn key_file_others_can_read_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mfad.key");
    Cipher::load_or_create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Cipher::load_or_create(&path).unwrap_err().to_string();
    let shown = path.display();
    assert_eq!(
        err,
        format!("key file {shown} is readable by others (mode 0644); run chmod 600 {shown}")
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
    let err = Cipher::load_or_create(&path).unwrap_err().to_string();
    assert!(
        err.contains("writable by others") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    Cipher::load_or_create(&path).unwrap();
}

#[test]
fn key_file_with_bad_content_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mfad.key");
    for (content, expected) in [
        ("abcd\n", "holds 4 characters"),
        (&"zz".repeat(32), "not hex digits"),
        ("", "holds 0 characters"),
    ] {
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Cipher::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains(expected) && err.contains("64 hex digits"),
            "{content:?}: {err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_under_another_key_file_name_both_keys() {
    let mut backend = fresh().await.unwrap();
    let store = backend.store();
    store
        .create_tokens(&[conformance::new_token("K1", None)], conformance::NOW)
        .await
        .unwrap();
    store
        .create_client(&conformance::new_client("vpn", "10.0.0.0/8").unwrap(), 0)
        .await
        .unwrap();
    drop(store);
    let old_key = Cipher::load_or_create(&key_path(&backend.dir)).unwrap();

    std::fs::remove_file(key_path(&backend.dir)).unwrap();
    let store = backend.reopen().await.unwrap();
    let new_key = Cipher::load_or_create(&key_path(&backend.dir)).unwrap();
    assert_ne!(old_key.key_id(), new_key.key_id());

    for err in [
        store.token_by_serial("K1").await.unwrap_err(),
        store.list_clients().await.unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(
            text.contains(old_key.key_id()) && text.contains(new_key.key_id()),
            "{text}"
        );
        assert!(text.contains("key file"), "{text}");
    }
}

#[tokio::test]
async fn open_creates_private_database_with_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a").join("b").join("mfad.db");
    let key = dir.path().join("secret").join("mfad.key");
    let url = format!("sqlite://{}", db.display());
    let store = mfad_store::open(&url, &key, OpenOptions::default())
        .await
        .unwrap();
    store
        .create_user(&conformance::new_user("x"), 0)
        .await
        .unwrap();
    assert_eq!(mode_of(&db).unwrap(), 0o600);
    assert_eq!(mode_of(&key).unwrap(), 0o600);
    drop(store);

    let url = format!("sqlite:{}", db.display());
    let store = mfad_store::open(&url, &key, OpenOptions::default())
        .await
        .unwrap();
    assert!(store.user_by_name("x").await.unwrap().is_some());
}

#[tokio::test]
async fn open_explains_urls_it_cannot_serve() {
    let key = Path::new("/nonexistent/mfad.key");
    let err = mfad_store::open("redis://cache", key, OpenOptions::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("'redis://cache'") && err.contains("sqlite://PATH"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_store_on_the_same_file_writes_alongside_the_first() {
    // What `mfad user add` does while `mfad serve` runs: its own connections, same file.
    let backend = fresh().await.unwrap();
    let server = backend.store();
    let cli = open_store(&backend.dir).unwrap();
    let token = conformance::given_token(&*server, "SHARED", None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = Arc::clone(if n % 2 == 0 { &server } else { &cli });
        tasks.push(tokio::spawn(async move {
            store
                .create_user(&conformance::new_user(&format!("u{n}")), 0)
                .await
                .unwrap();
            store.advance_token(token.id, n).await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(server.list_users().await.unwrap().len(), 40);
    assert_eq!(cli.list_users().await.unwrap().len(), 40);
    assert_eq!(
        cli.token_by_serial("SHARED").await.unwrap().unwrap().next,
        40
    );
    assert!(
        !server.advance_token(token.id, 39).await.unwrap(),
        "replay across processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_write_leaves_the_rest_of_its_batch_committed() {
    let backend = fresh().await.unwrap();
    let store = backend.store();
    let owner = conformance::given_user(&*store, "dup").await.unwrap();
    let challenge = |state: String| Challenge {
        state: state.into_bytes(),
        user_id: owner.id,
        client: "vpn".into(),
        kind: ChallengeKind::Otp,
        expires_at: i64::MAX,
    };
    store.put_challenge(&challenge("dup".into())).await.unwrap();
    // Multi-statement writes (savepoint) and single statements (no savepoint) failing
    // among successful ones in the same batches.
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let store = Arc::clone(&store);
            let name = if n % 3 == 0 {
                "dup".to_owned()
            } else {
                format!("ok{n}")
            };
            let state = if n % 3 == 1 {
                "dup".to_owned()
            } else {
                format!("s{n}")
            };
            let challenge = challenge(state);
            tokio::spawn(async move {
                let user = store.create_user(&conformance::new_user(&name), 0).await;
                let put = store.put_challenge(&challenge).await;
                (user.is_ok(), put.is_ok(), [user.err(), put.err()])
            })
        })
        .collect();
    let (mut users, mut challenges) = (0, 0);
    for task in tasks {
        let (user, put, errors) = task.await.unwrap();
        users += usize::from(user);
        challenges += usize::from(put);
        for e in errors.into_iter().flatten() {
            assert!(
                matches!(e, StoreError::Duplicate(_)),
                "unexpected error: {e}"
            );
        }
    }
    assert_eq!((users, challenges), (200, 200));
    assert_eq!(store.list_users().await.unwrap().len(), 201);
    for n in (0..300).filter(|n| n % 3 != 1) {
        let state = format!("s{n}");
        assert!(
            store
                .take_challenge(state.as_bytes(), 0)
                .await
                .unwrap()
                .is_some(),
            "{state}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_audit_is_written_when_the_store_closes() {
    let mut backend = fresh().await.unwrap();
    let store = backend.store();
    for n in 0..500 {
        store
            .append_audit(conformance::audit_record(n, "a", i64::from(n)))
            .await
            .unwrap();
    }
    drop(store);
    let store = backend.reopen().await.unwrap();
    assert_eq!(
        store
            .query_audit(&AuditQuery::default())
            .await
            .unwrap()
            .len(),
        500
    );
}

#[tokio::test]
async fn database_from_a_newer_mfad_is_refused() {
    let SqliteBackend { dir, store, .. } = fresh().await.unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let cipher = Cipher::load_or_create(&key_path(&dir)).unwrap();
    let err = SqliteStore::open(&db_path(&dir), cipher, SqliteOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("schema version 99") && err.to_string().contains("upgrade mfad")
    );
}

#[tokio::test]
async fn synchronous_normal_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        readers: 1,
        ..SqliteOptions::default()
    };
    let cipher = Cipher::load_or_create(&dir.path().join("k")).unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), cipher, options).unwrap();
    store
        .create_user(&conformance::new_user("n"), 0)
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert!(store.user_by_name("n").await.unwrap().is_some());
}
