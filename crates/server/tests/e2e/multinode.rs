//! Several `mfad serve` nodes on one PostgreSQL database, driven by Debian's `radclient`:
//! replay protection, counters, lockout, challenges, CLI changes and the audit log hold
//! across nodes; with the database away nodes fail closed and recover without a restart.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_testkit::{
    accepts_until_killed, assert_every_accept_recorded, assert_lockout_held, hotp_burst,
    oathtool_hotp, Mfad, PgCluster, PgDatabase, RadReply, Radclient, Running,
};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-secret-of-28-bytes!";
/// RFC 4226 Appendix D's key "12345678901234567890" in base32.
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// Nodes reload RADIUS clients from the store this often; users and tokens are read on
/// every request.
const REFRESH: Duration = Duration::from_secs(5);
/// Slack on top of [`REFRESH`] for one poll round trip on a busy machine.
const POLL_SLACK: Duration = Duration::from_secs(2);

fn hotp(counter: u64) -> String {
    oathtool_hotp(SEED, counter, 6)
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mfad"))
}

/// Node A (127.0.0.1) and node B (127.0.0.2) on one database, with a client for the
/// loopback network and `alice` holding an HOTP token. Rejects are answered at once.
fn two_nodes(db_url: &str, extra: &str, client_flags: &[&str]) -> (Mfad, Mfad) {
    let config = format!("reject_delay_ms = 0\n{extra}");
    let a = Mfad::new(bin())
        .with_store_url(db_url)
        .with_name("node-a")
        .with_config(&config);
    let b = Mfad::new(bin())
        .sharing_store_with(&a)
        .with_name("node-b")
        .with_listen("127.0.0.2:0")
        .with_config(&config);
    a.add_client_with("vpn", "127.0.0.0/8", SECRET, client_flags);
    a.cli_ok(["user", "add", "alice", "--given-name", "Alice"]);
    a.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    (a, b)
}

fn login(server: &Running, user: &str, password: &str) -> RadReply {
    Radclient::new(server.radius_addr(), SECRET)
        .send("auth", &[("User-Name", user), ("User-Password", password)])
}

/// Sends the same request to both nodes from two threads released together.
fn login_both(a: &Running, b: &Running, user: &str, password: &str) -> (RadReply, RadReply) {
    let barrier = std::sync::Barrier::new(2);
    let (addr_a, addr_b) = (a.radius_addr(), b.radius_addr());
    std::thread::scope(|s| {
        let send = |addr| {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                Radclient::new(addr, SECRET)
                    .send("auth", &[("User-Name", user), ("User-Password", password)])
            })
        };
        let (ra, rb) = (send(addr_a), send(addr_b));
        (ra.join().unwrap(), rb.join().unwrap())
    })
}

fn audit_log(node: &Mfad) -> Vec<serde_json::Value> {
    let log = node.cli_ok(["log", "--limit", "1000", "--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&log)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Polls `check` until it holds, failing after `limit`; returns how long it took.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn same_code_sent_to_two_nodes_at_once_is_accepted_exactly_once() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "", &[]);
    let (node_a, node_b) = (a.start(), b.start());
    for counter in 0..5 {
        let (ra, rb) = login_both(&node_a, &node_b, "alice", &hotp(counter));
        let accepts = [&ra, &rb].iter().filter(|r| r.is("Access-Accept")).count();
        assert_eq!(accepts, 1, "code {counter}: {}\n{}", ra.output, rb.output);
        assert!(
            ra.is("Access-Reject") || rb.is("Access-Reject"),
            "the other node rejects: {}\n{}",
            ra.output,
            rb.output
        );
    }
    node_a.stop();
    node_b.stop();

    // Every attempt is in the one audit log, each with the node that answered it.
    let records = audit_log(&b);
    assert_eq!(records.len(), 10);
    for (name, ip) in [("node-a", "127.0.0.2"), ("node-b", "127.0.0.1")] {
        // (each node's records name its own address, not the other's)
        assert!(
            !records
                .iter()
                .any(|r| r["server_name"] == name && r["server_ip"] == ip),
            "{name} records name the wrong address"
        );
    }
    for (name, ip) in [("node-a", "127.0.0.1"), ("node-b", "127.0.0.2")] {
        let from_node = records
            .iter()
            .filter(|r| r["server_name"] == name && r["server_ip"] == ip)
            .count();
        assert_eq!(
            from_node, 5,
            "{name} wrote one record per request: {records:?}"
        );
    }
    let accepted = records.iter().filter(|r| r["result"] == "accept").count();
    assert_eq!(accepted, 5);
}

#[test]
fn hotp_counters_only_move_forward_across_nodes() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "", &[]);
    let (node_a, node_b) = (a.start(), b.start());
    assert!(login(&node_a, "alice", &hotp(5)).is("Access-Accept"));
    assert!(
        login(&node_b, "alice", &hotp(3)).is("Access-Reject"),
        "a code below the counter another node moved is used up"
    );
    assert!(login(&node_b, "alice", &hotp(5)).is("Access-Reject"));
    assert!(login(&node_b, "alice", &hotp(6)).is("Access-Accept"));
    assert!(login(&node_a, "alice", &hotp(6)).is("Access-Reject"));
    assert!(login(&node_a, "alice", &hotp(7)).is("Access-Accept"));
    node_a.stop();
    node_b.stop();
}

#[test]
fn failures_on_different_nodes_add_up_to_one_lockout() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "[policy]\nmax_failures = 4\n", &[]);
    let (node_a, node_b) = (a.start(), b.start());
    for (n, node) in [&node_a, &node_b, &node_a].into_iter().enumerate() {
        assert!(
            login(node, "alice", "000000").is("Access-Reject"),
            "failure {n}"
        );
    }
    let shown = a.cli_ok(["user", "show", "alice", "--format", "json"]);
    let user: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(user["user"]["failures"], 3, "{shown}");
    // The fourth failure, on the other node, reaches the limit.
    assert!(login(&node_b, "alice", "000000").is("Access-Reject"));
    let shown = b.cli_ok(["user", "show", "alice", "--format", "json"]);
    let user: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(user["user"]["locked_until"].is_i64(), "locked: {shown}");
    for node in [&node_a, &node_b] {
        assert!(
            login(node, "alice", &hotp(0)).is("Access-Reject"),
            "a locked user is rejected on every node, even with a right code"
        );
    }
    b.cli_ok(["user", "unlock", "alice"]);
    assert!(login(&node_a, "alice", &hotp(0)).is("Access-Accept"));
    node_a.stop();
    node_b.stop();
}

/// The lockout burst of the SQLite test, spread over two nodes on one database: the
/// slots are taken in PostgreSQL, so the two nodes together check no more codes than
/// one lockout allows.
#[test]
fn a_burst_of_guesses_over_two_nodes_checks_no_more_codes_than_the_lockout_allows() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "[policy]\nmax_failures = 10\n", &[]);
    let (ra, rb) = (a.start(), b.start());
    let burst = hotp_burst(
        &[ra.radius_addr(), rb.radius_addr()],
        SECRET,
        "alice",
        SEED,
        200,
    );
    ra.stop();
    rb.stop();
    assert_lockout_held(&a, "alice", &burst, 200, 10);
}

/// The SQLite durability test on PostgreSQL: every Accept a client saw before the
/// node was killed has its audit record.
#[test]
fn every_accept_a_client_saw_has_its_audit_record_after_sigkill() {
    let db = PgDatabase::create();
    let (a, _) = two_nodes(&db.url(), "", &[]);
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    for user in &users {
        a.cli_ok(["user", "add", user]);
        a.cli_ok(["token", "add", user, "--type", "hotp", "--secret", SEED]);
    }
    let seen = accepts_until_killed(a.start(), SECRET, SEED, &users, 300);
    assert_every_accept_recorded(&a, &users, &seen);
}

#[test]
fn challenge_issued_by_one_node_is_answered_on_another() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "", &["--prompt", "challenge"]);
    let (node_a, node_b) = (a.start(), b.start());
    let challenge = login(&node_a, "alice", "");
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    let state = challenge.get("State").unwrap().to_string();
    let code = hotp(0);
    let answer = [
        ("User-Name", "alice"),
        ("User-Password", code.as_str()),
        ("State", state.as_str()),
    ];
    let on_b = Radclient::new(node_b.radius_addr(), SECRET).send("auth", &answer);
    assert!(on_b.is("Access-Accept"), "{}", on_b.output);
    let again = Radclient::new(node_a.radius_addr(), SECRET).send("auth", &answer);
    assert!(
        again.is("Access-Reject"),
        "the State was used on node B, so node A does not take it again: {}",
        again.output
    );
    node_a.stop();
    node_b.stop();
}

#[test]
fn cli_changes_on_any_node_are_in_force_on_every_node_within_5_seconds() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "", &[]);
    let (node_a, node_b) = (a.start(), b.start());
    assert!(login(&node_b, "alice", &hotp(0)).is("Access-Accept"));

    // A user and token added with node B's CLI work on node A at once: nodes read users
    // and tokens from the database on every request.
    b.cli_ok(["user", "add", "bob"]);
    b.cli_ok([
        "token", "add", "bob", "--type", "hotp", "--secret", SEED, "--serial", "hw-2",
    ]);
    assert!(login(&node_a, "bob", &hotp(0)).is("Access-Accept"));
    // Disabled on node A: rejected by node B.
    a.cli_ok(["user", "disable", "alice"]);
    assert!(login(&node_b, "alice", &hotp(1)).is("Access-Reject"));
    a.cli_ok(["user", "enable", "alice"]);
    assert!(login(&node_b, "alice", &hotp(1)).is("Access-Accept"));
    // A token deleted on node B no longer answers on node A.
    b.cli_ok(["token", "delete", "hw-2"]);
    assert!(login(&node_a, "bob", &hotp(1)).is("Access-Reject"));

    // Clients are reloaded: a new shared secret set through node A's CLI is used by
    // node B within the refresh period, without a restart.
    const NEW_SECRET: &str = "another-shared-secret-of-30-b!";
    a.cli_ok(["client", "remove", "vpn"]);
    a.add_client("vpn2", "127.0.0.0/8", NEW_SECRET);
    let mut counter = 2;
    let took = within(
        REFRESH + POLL_SLACK,
        "the new client secret on node B",
        || {
            let reply = Radclient::new(node_b.radius_addr(), NEW_SECRET)
                .with_timeout(Duration::from_millis(300))
                .send(
                    "auth",
                    &[("User-Name", "alice"), ("User-Password", &hotp(counter))],
                );
            if reply.is("Access-Accept") {
                counter += 1;
                return true;
            }
            false
        },
    );
    assert!(took <= REFRESH + POLL_SLACK, "took {took:?}");
    // And node B no longer answers under the removed client's secret: its
    // Message-Authenticator does not verify under the new one, so the request is
    // dropped (RFC 3579 §3.2) and nothing comes back, not even a Reject.
    let old = Radclient::new(node_b.radius_addr(), SECRET)
        .with_timeout(Duration::from_millis(1500))
        .send(
            "auth",
            &[("User-Name", "alice"), ("User-Password", &hotp(counter))],
        );
    assert!(old.is_silence(), "{}", old.output);
    node_a.stop();
    node_b.stop();
}

#[test]
fn with_the_database_down_nodes_fail_closed_and_recover_without_a_restart() {
    let mut cluster = PgCluster::start();
    let db = cluster.create_database();
    // A store deadline of 500 ms per call leaves radclient's 3 s timeout, the deadline
    // of the Reject, a wide margin on a loaded machine.
    let node = Mfad::new(bin())
        .with_store_url(&db.url())
        .with_config("reject_delay_ms = 0");
    let config = node
        .config()
        .replace("[store]\n", "[store]\ntimeout_ms = 500\n");
    std::fs::write(node.config_path(), config).unwrap();
    node.add_client("vpn", "127.0.0.1", SECRET);
    node.cli_ok(["user", "add", "alice"]);
    node.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    let server = node.start();
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));

    cluster.stop();
    for attempt in 0..3 {
        let reply = login(&server, "alice", &hotp(1));
        assert!(
            !reply.is("Access-Accept"),
            "attempt {attempt} with the database down: {}",
            reply.output
        );
        assert!(
            reply.is("Access-Reject"),
            "the node answers Reject within the client's timeout: {}",
            reply.output
        );
    }

    cluster.start_again();
    // The pooled connections died with the server; each is replaced after one failure,
    // so the node recovers within a few requests, without a restart.
    within(
        Duration::from_secs(30),
        "recovery after the database returns",
        || login(&server, "alice", &hotp(1)).is("Access-Accept"),
    );
    assert!(
        login(&server, "alice", &hotp(1)).is("Access-Reject"),
        "replay protection holds after the outage"
    );
    server.stop();
    let records = audit_log(&node);
    assert!(
        records.iter().any(|r| r["reason"] == "store_unavailable"),
        "the rejects of the outage reached the audit log once the database was back"
    );
}

#[test]
fn a_node_started_while_the_database_is_down_waits_for_it_and_then_serves() {
    let mut cluster = PgCluster::start();
    let db = cluster.create_database();
    let node = Mfad::new(bin()).with_store_url(&db.url());
    node.add_client("vpn", "127.0.0.1", SECRET);
    node.cli_ok(["user", "add", "alice"]);
    node.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);

    cluster.stop();
    let starting = node.spawn();
    assert!(
        starting.wait_for_log("waiting for the database", Duration::from_secs(20)),
        "the node says it waits for the database (and has not exited)"
    );
    assert!(
        !starting.wait_for_log("radius listening on", Duration::ZERO),
        "no RADIUS listener before the database answers"
    );

    cluster.start_again();
    let server = starting.running();
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    assert!(login(&server, "alice", &hotp(0)).is("Access-Reject"));
    server.stop();
}

#[test]
fn a_mistyped_database_url_stops_the_start_at_once() {
    let node = Mfad::new(bin()).with_store_url("postgres://mfad@db:notaport/mfad");
    let mut starting = node.spawn();
    let status = starting.wait_for_exit(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "the start fails and the process exits, with no wait for a database: {status:?}"
    );
    assert!(
        starting.wait_for_log("is not usable", Duration::ZERO),
        "the error names the URL"
    );
    assert!(!starting.wait_for_log("waiting for the database", Duration::ZERO));
}

/// A SQLite node with a client and `alice`, who has used code 0.
fn sqlite_node_after_one_login() -> Mfad {
    let node = Mfad::new(bin()).with_config("reject_delay_ms = 0");
    node.add_client("vpn", "127.0.0.0/8", SECRET);
    node.cli_ok(["user", "add", "alice", "--given-name", "Alice"]);
    node.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    let server = node.start();
    assert!(login(&server, "alice", &hotp(0)).is("Access-Accept"));
    server.stop();
    node
}

/// Asserts the node serves the copied data: code 0 stays used, code 1 is accepted.
fn serves_the_copy(node: &Mfad) {
    let server = node.start();
    assert!(
        login(&server, "alice", &hotp(0)).is("Access-Reject"),
        "a code used before the copy stays used"
    );
    assert!(login(&server, "alice", &hotp(1)).is("Access-Accept"));
    server.stop();
}

/// A node with `sqlite`'s key and clients on the store at `url`, rejecting at once.
fn node_on(sqlite: &Mfad, url: &str) -> Mfad {
    Mfad::new(bin())
        .sharing_store_with(sqlite)
        .with_store_url(url)
        .with_config("reject_delay_ms = 0")
}

/// `mfad store copy` from `from`'s store to `to`, as `from` runs it.
fn store_copy(from: &Mfad, to: &str) -> String {
    from.cli_ok(["store", "copy", "--from", from.store_url(), "--to", to])
}

#[test]
fn store_copy_moves_everything_from_sqlite_to_postgres_and_back() {
    let sqlite = sqlite_node_after_one_login();
    let db = PgDatabase::create();
    let out = store_copy(&sqlite, &db.url());
    assert!(
        out.contains("copied 1 users, 1 tokens, 1 clients, 0 challenges, 0 cached authentications, 1 audit records"),
        "{out}"
    );
    // Secrets arrive sealed, as they were in SQLite.
    let dump = String::from_utf8_lossy(&db.dump()).into_owned();
    assert!(dump.contains("hw-1") && dump.contains("v1:"), "{dump}");
    for secret in [SEED, "12345678901234567890", SECRET] {
        assert!(!dump.contains(secret), "{secret} stored in plaintext");
    }
    let on_pg = node_on(&sqlite, &db.url());
    serves_the_copy(&on_pg);
    let log = audit_log(&on_pg);
    assert_eq!(log.len(), 3, "the SQLite node's record came along: {log:?}");

    // Into a store that holds data: refused, nothing merged.
    let err = sqlite.cli_err([
        "store",
        "copy",
        "--from",
        sqlite.store_url(),
        "--to",
        &db.url(),
    ]);
    assert!(
        err.contains("already holds") && err.contains("new, empty database"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // And back to a new SQLite file.
    let back_dir = tempfile::tempdir().unwrap();
    let back_url = format!("sqlite://{}", back_dir.path().join("back.db").display());
    store_copy(&on_pg, &back_url);
    let back = node_on(&sqlite, &back_url);
    let server = back.start();
    assert!(
        login(&server, "alice", &hotp(1)).is("Access-Reject"),
        "used on PostgreSQL"
    );
    assert!(login(&server, "alice", &hotp(2)).is("Access-Accept"));
    server.stop();
}

#[test]
fn backup_and_restore_make_a_consistent_snapshot_of_postgres() {
    let sqlite = sqlite_node_after_one_login();
    let db = PgDatabase::create();
    store_copy(&sqlite, &db.url());
    let node = node_on(&sqlite, &db.url());

    let file = node.dir().join("mfad.backup");
    let out = node.cli_ok(["backup".as_ref(), file.as_os_str()]);
    assert!(
        out.contains("backed up 1 users, 1 tokens, 1 clients"),
        "{out}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the backup holds PIN hashes and sealed secrets"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("{\"kind\":\"header\",\"format\":\"mfad-snapshot\",\"version\":3"));
    assert!(text.contains("\"serial\":\"hw-1\"") && !text.contains(SEED));
    let err = node.cli_err(["backup".as_ref(), file.as_os_str()]);
    assert!(err.contains("already exists"), "{err}");

    let fresh = PgDatabase::create();
    let restored = node_on(&sqlite, &fresh.url());
    let out = restored.cli_ok(["restore".as_ref(), file.as_os_str()]);
    assert!(
        out.contains("restored 1 users, 1 tokens, 1 clients"),
        "{out}"
    );
    serves_the_copy(&restored);

    let err = restored.cli_err(["restore".as_ref(), file.as_os_str()]);
    assert!(err.contains("already holds"), "{err}");
    let cut = node.dir().join("cut.backup");
    let first_lines: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&cut, first_lines).unwrap();
    let empty = PgDatabase::create();
    let target = node_on(&sqlite, &empty.url());
    let err = target.cli_err(["restore".as_ref(), cut.as_os_str()]);
    assert!(err.contains("incomplete"), "{err}");
    assert_eq!(empty.psql("SELECT count(*) FROM users").trim(), "0");
}

#[test]
fn when_a_node_dies_the_other_serves_its_challenges_and_keeps_its_codes_used() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "", &["--prompt", "challenge"]);
    let (node_a, node_b) = (a.start(), b.start());
    // Node A accepts code 0 in a challenge round, and issues a second challenge.
    let first = login(&node_a, "alice", "");
    let state = first.get("State").unwrap().to_string();
    let code = hotp(0);
    let accepted = Radclient::new(node_a.radius_addr(), SECRET).send(
        "auth",
        &[
            ("User-Name", "alice"),
            ("User-Password", code.as_str()),
            ("State", state.as_str()),
        ],
    );
    assert!(accepted.is("Access-Accept"), "{}", accepted.output);
    let pending = login(&node_a, "alice", "");
    let state = pending.get("State").unwrap().to_string();
    node_a.kill9();

    // The client retries on node B: node A's challenge is answered there.
    let answer = |state: &str, code: &str| {
        Radclient::new(node_b.radius_addr(), SECRET).send(
            "auth",
            &[
                ("User-Name", "alice"),
                ("User-Password", code),
                ("State", state),
            ],
        )
    };
    let reply = answer(&state, &hotp(1));
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    // And the codes node A and B accepted stay used.
    for used in [0, 1] {
        let fresh = login(&node_b, "alice", "");
        let state = fresh.get("State").unwrap().to_string();
        assert!(
            answer(&state, &hotp(used)).is("Access-Reject"),
            "code {used} stays used after node A died"
        );
    }
    node_b.stop();
}

/// Node A, holding the RADIUS request, and node B, receiving the provider's webhooks,
/// on one database: a call and a two-way SMS started by A are decided on B.
#[test]
fn out_of_band_answers_reaching_another_node_end_the_waiting_login() {
    const SID: &str = "AC00000000000000000000000000000009";
    const TOKEN: &str = "twilio-multinode-token";
    let db = PgDatabase::create();
    let fake = mfad_testkit::FakeTwilio::start(SID, TOKEN);
    let gateways = |node: &Mfad| {
        let token_file = node.dir().join("twilio-token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let twilio = format!(
            "api_url = \"{}\"\naccount_sid = \"{SID}\"\nauth_token_file = {:?}\nfrom = \"+15005550006\"\n",
            fake.url(),
            token_file.display().to_string()
        );
        format!(
            "reject_delay_ms = 0\n\n[policy]\nout_of_band_timeout_seconds = 15\n\n\
             [policy.sms]\nmode = \"two-way\"\n\n\
             [voice]\ngateway = \"twilio\"\n\n\
             [voice.twilio]\n{twilio}\n\
             [sms]\ngateway = \"twilio\"\n\n[sms.twilio]\n{twilio}"
        )
    };
    let b = Mfad::new(bin())
        .with_store_url(&db.url())
        .with_name("node-b");
    let b = {
        let config = gateways(&b);
        b.with_config(&config)
    };
    b.add_client("vpn", "127.0.0.0/8", SECRET);
    b.cli_ok([
        "user",
        "add",
        "vic",
        "--method",
        "call",
        "--phone",
        "+14255550199",
    ]);
    b.cli_ok([
        "user",
        "add",
        "sam",
        "--method",
        "sms",
        "--phone",
        "+14255550142",
    ]);
    let server_b = b.start();
    let voice_b = server_b.http_url("webhooks");
    let sms_b = format!("{voice_b}/hooks/sms/inbound");
    // Twilio is told to call node B back for node A's calls: A's public URL is B's.
    let a = Mfad::new(bin())
        .sharing_store_with(&b)
        .with_name("node-a")
        .with_listen("127.0.0.2:0")
        .with_http(&format!(
            "[http]\npublic_url = \"{voice_b}\"\n\n\
             [[http.listeners]]\nlisten = \"127.0.0.1:0\"\nserve = [\"metrics\"]\ntls = false\n"
        ));
    let a = {
        let config = gateways(&a);
        a.with_config(&config)
    };
    let server_a = a.start();

    fake.script_calls([mfad_testkit::CallScript::Press("#".into())]);
    let reply = Radclient::new(server_a.radius_addr(), SECRET)
        .with_timeout(Duration::from_secs(20))
        .send("auth", &[("User-Name", "vic"), ("User-Password", "x")]);
    assert!(
        reply.is("Access-Accept"),
        "{}\n{}",
        reply.output,
        server_a.logs()
    );
    assert!(
        fake.calls()[0].url.starts_with(&voice_b),
        "{:?}",
        fake.calls()
    );

    let client =
        Radclient::new(server_a.radius_addr(), SECRET).with_timeout(Duration::from_secs(20));
    let login = std::thread::spawn(move || {
        client.send("auth", &[("User-Name", "sam"), ("User-Password", "x")])
    });
    let code = fake.wait_for_messages(1, Duration::from_secs(20))[0]
        .code(6)
        .unwrap();
    assert_eq!(
        fake.reply_sms(&sms_b, "+14255550142", "+15005550006", &code),
        200
    );
    let reply = login.join().unwrap();
    assert!(
        reply.is("Access-Accept"),
        "{}\n{}",
        reply.output,
        server_a.logs()
    );

    let log = audit_log(&a);
    assert_eq!(log.len(), 2, "one record per login: {log:?}");
    assert!(log.iter().all(|r| r["result"] == "accept"), "{log:?}");
    server_a.stop();
    server_b.stop();
}

#[test]
fn a_setting_changed_with_the_cli_is_in_force_on_both_nodes_within_5_seconds() {
    let db = PgDatabase::create();
    let (a, b) = two_nodes(&db.url(), "", &[]);
    a.cli_ok(["user", "add", "bob"]);
    a.cli_ok([
        "token", "add", "bob", "--type", "hotp", "--secret", SEED, "--serial", "hw-2",
    ]);
    let (node_a, node_b) = (a.start(), b.start());
    // The default is 10 failures; node B's CLI lowers it for the whole cluster.
    b.cli_ok(["setting", "set", "policy.max_failures", "3"]);
    for node in [&node_a, &node_b] {
        assert!(
            node.wait_for_log("changed=policy", Duration::from_secs(5)),
            "the new policy is in force within 5 s: {}",
            node.logs()
        );
    }
    for (node, user) in [(&node_a, "alice"), (&node_b, "bob")] {
        for n in 0..3 {
            assert!(
                login(node, user, "000000").is("Access-Reject"),
                "{user}: failure {n}"
            );
        }
        let shown = a.cli_ok(["user", "show", user, "--format", "json"]);
        let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert!(
            shown["user"]["locked_until"].is_i64(),
            "{user} is locked after 3 failures: {shown}"
        );
    }
    // Unset on node A: every node is back on the file's value.
    a.cli_ok(["setting", "unset", "policy.max_failures"]);
    for node in [&node_a, &node_b] {
        within(Duration::from_secs(5), "the file's policy again", || {
            node.logs().matches("changed=policy").count() >= 2
        });
    }
    node_a.stop();
    node_b.stop();
}
