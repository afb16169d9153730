//! End to end with a real OpenLDAP `slapd`: import and sync, the mass-change safeguard,
//! group items, StartTLS, `mfad directory test`, and the directory password as first
//! factor through `radclient`, including a directory that stops and comes back. Active
//! Directory is stood in for by slapd with the `msuser` schema Debian ships (objectGUID,
//! userPrincipalName, userAccountControl).

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_testkit::{
    base_ldif, oathtool_hotp, ou_ldif, person_category_dn, person_ldif, Mfad, RadReply, Radclient,
    ReceivedMail, Running, Slapd, SmtpMode, SmtpServer, ADMIN_DN, BASE_DN,
};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-secret-of-28-bytes!";
/// RFC 4226 Appendix D's key in base32.
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn staff() -> String {
    format!("ou=staff,ou=people,{BASE_DN}")
}

/// The base tree, `ou=staff` and `ou=guests`, and `n` staff users `user0..` plus alice.
fn seed(n: usize) -> String {
    let people = format!("ou=people,{BASE_DN}");
    let mut ldif = base_ldif();
    ldif.push_str(&ou_ldif("staff", &people));
    ldif.push_str(&ou_ldif("guests", &people));
    ldif.push_str(&person_ldif(
        "alice",
        &staff(),
        "Alice",
        "Liddell",
        "pw-alice",
    ));
    for i in 0..n {
        ldif.push_str(&person_ldif(
            &format!("user{i}"),
            &staff(),
            "User",
            &format!("Number{i}"),
            "pw",
        ));
    }
    ldif
}

/// The `[directory]` section for `slapd`, with `extra` lines appended to it.
fn directory_config(slapd: &Slapd, extra: &str) -> String {
    format!(
        "reject_delay_ms = 0\n\n[directory]\nservers = [\"{}\"]\npreset = \"openldap\"\n\
         ca_file = \"{}\"\nbind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\n\
         base_dn = \"{BASE_DN}\"\nconnect_timeout_ms = 2000\ntimeout_ms = 2000\n{extra}",
        slapd.url(),
        slapd.ca_file().display(),
        slapd.admin_password_file().display()
    )
}

fn staff_item() -> String {
    format!(
        "\n[[directory.sync_items]]\nname = \"staff\"\ncontainer = \"{}\"\nmethod = \"token\"\nlanguage = \"en\"\n",
        staff()
    )
}

fn mfad(config: &str) -> Mfad {
    Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad"))).with_config(config)
}

fn user_json(node: &Mfad, name: &str) -> serde_json::Value {
    let out = node.cli_ok(["user", "show", name, "--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["user"].clone()
}

#[test]
fn import_adds_users_and_a_second_import_changes_nothing() {
    let slapd = Slapd::start(&seed(3));
    let node = mfad(&directory_config(&slapd, &staff_item()));

    let dry = node.cli_ok(["directory", "import", "--dry-run"]);
    assert!(dry.contains("dry run") && dry.contains("added 4,"), "{dry}");
    assert!(
        node.cli_ok(["user", "list", "--format", "json"]).trim() == "[]",
        "a dry run changes nothing"
    );

    let first = node.cli_ok(["directory", "import"]);
    assert!(
        first.contains("added 4, updated 0, unchanged 0, disabled 0, removed 0"),
        "{first}"
    );
    let alice = user_json(&node, "alice");
    assert_eq!(alice["given_name"], "Alice");
    assert_eq!(alice["surname"], "Liddell");
    assert_eq!(alice["email"], "alice@example.org");
    assert_eq!(alice["sync_item"], "staff");
    assert_eq!(alice["language"], "en", "the item's default language");
    assert_eq!(alice["method"], "token", "the item's default method");
    let id = alice["directory_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "entryUUID: {id}");

    let second = node.cli_ok(["directory", "sync"]);
    assert!(
        second.contains("added 0, updated 0, unchanged 4, disabled 0, removed 0"),
        "{second}"
    );
    let status = node.cli_ok(["directory", "status"]);
    assert!(status.contains("unchanged 4"), "{status}");
}

#[test]
fn renames_moves_and_attribute_changes_update_the_same_user() {
    let slapd = Slapd::start(&seed(1));
    let node = mfad(&directory_config(&slapd, &staff_item()));
    node.cli_ok(["directory", "import"]);
    let before = user_json(&node, "user0");

    slapd.modify(&format!(
        "{}dn: uid=user0,{staff}\nchangetype: modrdn\nnewrdn: uid=robert\ndeleteoldrdn: 1\n\
         newsuperior: ou=admins,{staff}\n\n\
         dn: uid=robert,ou=admins,{staff}\nchangetype: modify\nreplace: mail\nmail: robert@example.org\n\
         -\nreplace: telephoneNumber\ntelephoneNumber: +15550000042\n-\nadd: mobile\nmobile: +15550000043\n\n",
        ou_ldif("admins", &staff()),
        staff = staff()
    ));
    let out = node.cli_ok(["directory", "sync"]);
    assert!(out.contains("added 0, updated 1, unchanged 1"), "{out}");
    let after = user_json(&node, "robert");
    assert_eq!(after["id"], before["id"], "the same mfad user");
    assert_eq!(after["directory_id"], before["directory_id"]);
    assert_eq!(after["email"], "robert@example.org");
    assert_eq!(after["phone"], "+15550000042");
    assert_eq!(after["mobile"], "+15550000043");
    node.cli_err(["user", "show", "user0"]);
    let again = node.cli_ok(["directory", "sync"]);
    assert!(again.contains("added 0, updated 0, unchanged 2"), "{again}");
}

#[test]
fn leavers_are_disabled_and_a_mass_change_waits_for_approval() {
    let slapd = Slapd::start(&seed(8));
    let node = mfad(&directory_config(&slapd, &staff_item()));
    node.cli_ok(["directory", "import"]);
    let move_out = |uid: &str| {
        format!(
            "dn: uid={uid},{}\nchangetype: modrdn\nnewrdn: uid={uid}\ndeleteoldrdn: 1\nnewsuperior: ou=guests,ou=people,{BASE_DN}\n\n",
            staff()
        )
    };
    // One leaver: under the threshold (5), disabled at once.
    slapd.modify(&move_out("user0"));
    let out = node.cli_ok(["directory", "sync"]);
    assert!(out.contains("disabled 1"), "{out}");
    let user0 = user_json(&node, "user0");
    assert_eq!(user0["enabled"], false);
    assert_eq!(user0["sync_item"], serde_json::Value::Null);

    // Six more: held back, nothing of that kind applied.
    let six: String = (1..7).map(|i| move_out(&format!("user{i}"))).collect();
    slapd.modify(&six);
    let held = node.cli_ok(["directory", "sync"]);
    assert!(
        held.contains("disabled 0")
            && held.contains("held back")
            && held.contains("disable 6 users"),
        "{held}"
    );
    assert_eq!(user_json(&node, "user1")["enabled"], true);
    let status = node.cli_ok(["directory", "status"]);
    assert!(status.contains("waiting for approval"), "{status}");
    let again = node.cli_ok(["directory", "sync"]);
    assert!(
        again.contains("held back"),
        "still held without approval: {again}"
    );

    node.cli_ok(["directory", "approve"]);
    let applied = node.cli_ok(["directory", "sync"]);
    assert!(applied.contains("disabled 6"), "{applied}");
    assert_eq!(user_json(&node, "user1")["enabled"], false);
    assert!(!node.cli_ok(["directory", "status"]).contains("waiting"));
    let err = node.cli_err(["directory", "approve"]);
    assert!(err.contains("nothing is waiting for approval"), "{err}");

    // Coming back re-enables the same user.
    slapd.modify(&format!(
        "dn: uid=user0,ou=guests,ou=people,{BASE_DN}\nchangetype: modrdn\nnewrdn: uid=user0\ndeleteoldrdn: 1\nnewsuperior: {}\n\n",
        staff()
    ));
    let back = node.cli_ok(["directory", "sync"]);
    assert!(back.contains("updated 1"), "{back}");
    assert_eq!(user_json(&node, "user0")["enabled"], true);
}

#[test]
fn removed_users_setting_deletes_leavers() {
    let slapd = Slapd::start(&seed(2));
    let node = mfad(&directory_config(
        &slapd,
        &format!("removed_users = \"remove\"\n{}", staff_item()),
    ));
    node.cli_ok(["directory", "import"]);
    slapd.modify(&format!(
        "dn: uid=user1,{}\nchangetype: delete\n\n",
        staff()
    ));
    let out = node.cli_ok(["directory", "sync"]);
    assert!(out.contains("removed 1"), "{out}");
    node.cli_err(["user", "show", "user1"]);
}

#[test]
fn a_mass_removal_waits_for_approval_and_then_deletes_the_leavers() {
    let slapd = Slapd::start(&seed(8));
    let node = mfad(&directory_config(
        &slapd,
        &format!("removed_users = \"remove\"\n{}", staff_item()),
    ));
    let out = node.cli_ok(["directory", "import"]);
    assert!(out.contains("added 9"), "{out}");
    // Six deleted from the directory: more than the threshold (5).
    let six: String = (0..6)
        .map(|i| format!("dn: uid=user{i},{}\nchangetype: delete\n\n", staff()))
        .collect();
    slapd.modify(&six);
    let held = node.cli_ok(["directory", "sync"]);
    assert!(
        held.contains("removed 0") && held.contains("held back") && held.contains("remove 6 users"),
        "{held}"
    );
    for i in 0..6 {
        assert_eq!(user_json(&node, &format!("user{i}"))["enabled"], true);
    }
    let status = node.cli_ok(["directory", "status"]);
    assert!(
        status.contains("waiting for approval") && status.contains("remove 6 users"),
        "{status}"
    );
    let again = node.cli_ok(["directory", "sync"]);
    assert!(
        again.contains("removed 0") && again.contains("held back"),
        "still held without approval: {again}"
    );
    node.cli_ok(["user", "show", "user0"]);

    node.cli_ok(["directory", "approve"]);
    let applied = node.cli_ok(["directory", "sync"]);
    assert!(applied.contains("removed 6"), "{applied}");
    for i in 0..6 {
        node.cli_err(["user", "show", &format!("user{i}")]);
    }
    for name in ["user6", "user7", "alice"] {
        assert_eq!(user_json(&node, name)["enabled"], true, "{name}");
    }
    assert!(!node.cli_ok(["directory", "status"]).contains("waiting"));
}

#[test]
fn group_items_match_first_in_order_with_their_method_and_language() {
    let mut ldif = seed(2);
    ldif.push_str(&format!(
        "dn: cn=vpn,ou=groups,{BASE_DN}\nobjectClass: groupOfNames\ncn: vpn\nmember: uid=user1,{}\n\n",
        staff()
    ));
    let slapd = Slapd::start(&ldif);
    let items = format!(
        "\n[[directory.sync_items]]\nname = \"vpn-users\"\ngroup = \"cn=vpn,ou=groups,{BASE_DN}\"\n\
         method = \"sms\"\nlanguage = \"de\"\n{}",
        staff_item()
    );
    let node = mfad(&directory_config(&slapd, &items));
    let out = node.cli_ok(["directory", "import"]);
    assert!(out.contains("added 3"), "{out}");
    let user1 = user_json(&node, "user1");
    assert_eq!(
        (
            user1["sync_item"].as_str(),
            user1["method"].as_str(),
            user1["language"].as_str()
        ),
        (Some("vpn-users"), Some("sms"), Some("de"))
    );
    assert_eq!(user_json(&node, "user0")["sync_item"], "staff");
    // Leaving the group moves the user to the next item that holds them.
    slapd.modify(&format!(
        "dn: cn=vpn,ou=groups,{BASE_DN}\nchangetype: modify\nreplace: member\nmember: uid=alice,{}\n\n",
        staff()
    ));
    let out = node.cli_ok(["directory", "sync"]);
    assert!(out.contains("updated 2"), "{out}");
    assert_eq!(user_json(&node, "user1")["sync_item"], "staff");
    assert_eq!(user_json(&node, "alice")["sync_item"], "vpn-users");
}

#[test]
fn directory_test_reports_each_step_and_says_what_failed() {
    let slapd = Slapd::start(&seed(0));
    let node = mfad(&directory_config(&slapd, ""));
    let ok = node.cli_ok(["directory", "test"]);
    for step in [
        "tcp    ok",
        "tls    ok",
        "StartTLS",
        "bind   ok",
        "search ok",
        "all 1 servers passed",
    ] {
        assert!(ok.contains(step), "{step} in:\n{ok}");
    }

    // ldaps://: TLS from the first byte, same checks.
    let node = mfad(&directory_config(&slapd, "").replace(&slapd.url(), &slapd.ldaps_url()));
    let ok = node.cli_ok(["directory", "test"]);
    assert!(
        ok.contains("TLS (ldaps)") && ok.contains("search ok"),
        "{ok}"
    );
    let out = node.cli_ok(["directory", "import"]);
    assert!(out.contains("added 1,"), "{out}");

    let wrong_password = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong_password.path(), "not-the-password\n").unwrap();
    let node = mfad(&directory_config(&slapd, "").replace(
        &slapd.admin_password_file().display().to_string(),
        &wrong_password.path().display().to_string(),
    ));
    let out = node.cli(["directory", "test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("bind   FAILED") && stdout.contains("invalid credentials"),
        "{stdout}"
    );

    // A CA that did not sign the server's certificate: TLS fails, named as such.
    let other = Slapd::start(&seed(0));
    let node = mfad(&directory_config(&slapd, "").replace(
        &slapd.ca_file().display().to_string(),
        &other.ca_file().display().to_string(),
    ));
    let stdout = String::from_utf8_lossy(&node.cli(["directory", "test"]).stdout).into_owned();
    assert!(stdout.contains("tls    FAILED"), "{stdout}");

    // Nothing listening: TCP fails; a second, working server still passes.
    let closed = format!("ldap://127.0.0.1:{}", mfad_testkit::free_tcp_port());
    let node = mfad(&directory_config(&slapd, "").replace(
        &format!("servers = [\"{}\"]", slapd.url()),
        &format!("servers = [\"{closed}\", \"{}\"]", slapd.url()),
    ));
    let stdout = node.cli_ok(["directory", "test"]);
    assert!(
        stdout.contains("tcp    FAILED") && stdout.contains("1 of 2 servers passed"),
        "{stdout}"
    );
}

/// A node whose client checks the directory password, with alice imported and holding
/// an HOTP token.
fn first_factor_node(slapd: &Slapd, client_flags: &[&str], extra: &str) -> Mfad {
    let node = mfad(&directory_config(
        slapd,
        &format!("{}{extra}", staff_item()),
    ));
    node.cli_ok(["directory", "import"]);
    let mut options = vec!["--first-factor", "directory"];
    options.extend_from_slice(client_flags);
    node.add_client_with("vpn", "127.0.0.1", SECRET, &options);
    node.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    node
}

fn login(server: &Running, password: &str, state: Option<&str>) -> RadReply {
    let mut attrs = vec![("User-Name", "alice"), ("User-Password", password)];
    if let Some(state) = state {
        attrs.push(("State", state));
    }
    Radclient::new(server.radius_addr(), SECRET).send("auth", &attrs)
}

fn last_reason(node: &Mfad) -> String {
    let log = node.cli_ok(["log", "--user", "alice", "--limit", "1", "--format", "json"]);
    let records: serde_json::Value = serde_json::from_str(&log).unwrap();
    records[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn directory_password_then_a_challenge_for_the_code() {
    let slapd = Slapd::start(&seed(0));
    let node = first_factor_node(&slapd, &["--prompt", "challenge"], "");
    let server = node.start();

    let challenge = login(&server, "pw-alice", None);
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    let state = challenge.get("State").unwrap().to_string();
    let accept = login(&server, &oathtool_hotp(SEED, 0, 6), Some(&state));
    assert!(accept.is("Access-Accept"), "{}", accept.output);

    let wrong = login(&server, "not-her-password", None);
    assert!(wrong.is("Access-Reject"), "{}", wrong.output);
    server.stop();
    assert_eq!(last_reason(&node), "wrong_password");
}

#[test]
fn password_and_code_in_one_field_by_length_or_separator() {
    let slapd = Slapd::start(&seed(0));
    let node = first_factor_node(&slapd, &["--prompt", "inline"], "");
    let server = node.start();
    let ok = login(
        &server,
        &format!("pw-alice{}", oathtool_hotp(SEED, 0, 6)),
        None,
    );
    assert!(ok.is("Access-Accept"), "{}", ok.output);
    let wrong_code = login(&server, "pw-alice000000", None);
    assert!(wrong_code.is("Access-Reject"), "{}", wrong_code.output);
    server.stop();

    let node = first_factor_node(&slapd, &["--code-separator", ","], "");
    let server = node.start();
    let ok = login(
        &server,
        &format!("pw-alice,{}", oathtool_hotp(SEED, 0, 6)),
        None,
    );
    assert!(ok.is("Access-Accept"), "{}", ok.output);
    let wrong_password = login(
        &server,
        &format!("pw-bob,{}", oathtool_hotp(SEED, 1, 6)),
        None,
    );
    assert!(
        wrong_password.is("Access-Reject"),
        "{}",
        wrong_password.output
    );
    // Without the separator (auto prompt) the field is the password, and the code is asked for.
    let challenge = login(&server, "pw-alice", None);
    assert!(challenge.is("Access-Challenge"), "{}", challenge.output);
    server.stop();
}

#[test]
fn wrong_passwords_lock_the_user_and_a_locked_user_is_rejected_without_a_bind() {
    let mut slapd = Slapd::start(&seed(0));
    let node = first_factor_node(
        &slapd,
        &["--prompt", "challenge"],
        "\n[policy]\nmax_failures = 3\n",
    );
    let server = node.start();
    for _ in 0..3 {
        assert!(login(&server, "guess", None).is("Access-Reject"));
    }
    assert_eq!(
        user_json(&node, "alice")["failures"],
        0,
        "reset by the lock"
    );
    assert!(user_json(&node, "alice")["locked_until"].is_i64(), "locked");
    // With the directory gone, a locked user's reason is still "locked": no bind was tried.
    slapd.stop();
    let locked = login(&server, "pw-alice", None);
    assert!(locked.is("Access-Reject"), "{}", locked.output);
    server.stop();
    assert_eq!(last_reason(&node), "locked");
}

#[test]
fn a_stopped_directory_rejects_within_the_timeout_and_recovery_follows() {
    let mut slapd = Slapd::start(&seed(0));
    let node = first_factor_node(&slapd, &["--prompt", "challenge"], "");
    let server = node.start();
    assert!(login(&server, "pw-alice", None).is("Access-Challenge"));

    slapd.stop();
    let started = Instant::now();
    let down = login(&server, "pw-alice", None);
    assert!(
        down.is("Access-Reject"),
        "never Accept or Challenge: {}",
        down.output
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    slapd.restart();
    // The first request after the restart may still meet the dead connection; the
    // reconnect makes it succeed, so poll with a deadline rather than sleeping.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = login(&server, "pw-alice", None);
        if reply.is("Access-Challenge") {
            break;
        }
        assert!(reply.is("Access-Reject"), "{}", reply.output);
        assert!(
            Instant::now() < deadline,
            "no recovery after the directory came back"
        );
    }
    server.stop();
    let log = node.cli_ok(["log", "--user", "alice", "--format", "json"]);
    assert!(log.contains("directory_unavailable"), "{log}");
}

#[test]
fn scheduled_sync_runs_on_one_node_of_a_cluster() {
    let slapd = Slapd::start(&seed(2));
    let config = directory_config(&slapd, &format!("sync_interval = \"1h\"\n{}", staff_item()));
    let a = mfad(&config);
    let server_a = a.start();
    assert!(
        server_a.wait_for_log("directory sync: added 3", Duration::from_secs(30)),
        "{}",
        server_a.logs()
    );
    let b = mfad(&config).sharing_store_with(&a);
    let server_b = b.start();
    assert!(
        server_b.wait_for_log("directory sync skipped", Duration::from_secs(30)),
        "{}",
        server_b.logs()
    );
    assert!(!server_b.logs().contains("directory sync: added"));
    server_b.stop();
    server_a.stop();
    assert!(a.cli_ok(["user", "list"]).contains("user1"));
}

#[test]
fn a_missing_or_broken_directory_section_is_a_one_line_error() {
    let node = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")));
    let err = node.cli_err(["directory", "import"]);
    assert!(err.contains("no [directory] section"), "{err}");
    let bad = Mfad::new(Path::new(env!("CARGO_BIN_EXE_mfad")))
        .with_config("[directory]\nservers = [\"https://dc1\"]\nbase_dn = \"dc=x\"\n");
    let err = bad.cli_err(["user", "list"]);
    assert!(
        err.contains("https://dc1") && err.lines().count() == 1,
        "{err}"
    );
}

/// A TCP server that accepts connections and never answers: a hung directory.
struct Stalled {
    addr: std::net::SocketAddr,
    _accepting: std::thread::JoinHandle<()>,
}

impl Stalled {
    fn start() -> Stalled {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = std::thread::spawn(move || {
            let mut held = Vec::new();
            // Ends when the test process exits; the sockets are only held open.
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Stalled {
            addr,
            _accepting: accepting,
        }
    }
}

#[test]
fn a_hung_server_is_skipped_for_the_next_and_alone_it_rejects_within_the_timeout() {
    let slapd = Slapd::start(&seed(0));
    let stalled = Stalled::start();
    let hung = format!("ldap://{}", stalled.addr);
    let node = first_factor_node(&slapd, &["--prompt", "challenge"], "");
    let config = std::fs::read_to_string(node.config_path()).unwrap();
    // A hung server costs connect_timeout_ms (its service bind never answers); make
    // that long, so that skipping it shows plainly in the time a login takes, however
    // loaded the machine.
    let failover = config
        .replace(
            &format!("servers = [\"{}\"]", slapd.url()),
            &format!("servers = [\"{hung}\", \"{}\"]", slapd.url()),
        )
        .replace("connect_timeout_ms = 2000", "connect_timeout_ms = 10000");
    assert!(
        failover.contains("connect_timeout_ms = 10000"),
        "{failover}"
    );
    std::fs::write(node.config_path(), &failover).unwrap();
    let server = node.start();
    let slow_login = |password: &str| {
        Radclient::new(server.radius_addr(), SECRET)
            .with_timeout(Duration::from_secs(15))
            .send(
                "auth",
                &[("User-Name", "alice"), ("User-Password", password)],
            )
    };
    let reply = slow_login("pw-alice");
    assert!(
        reply.is("Access-Challenge"),
        "the backup answered: {}",
        reply.output
    );
    // Later connections start at the server that answered: no 10 s timeout on the
    // hung one.
    let started = Instant::now();
    let reply = slow_login("pw-alice");
    assert!(reply.is("Access-Challenge"), "{}", reply.output);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    server.stop();

    let alone = config.replace(
        &format!("servers = [\"{}\"]", slapd.url()),
        &format!("servers = [\"{hung}\"]"),
    );
    std::fs::write(node.config_path(), alone).unwrap();
    let server = node.start();
    let started = Instant::now();
    let reply = Radclient::new(server.radius_addr(), SECRET)
        .with_timeout(Duration::from_secs(15))
        .send(
            "auth",
            &[("User-Name", "alice"), ("User-Password", "pw-alice")],
        );
    let took = started.elapsed();
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    // 2 × (connect_timeout_ms + timeout_ms) = 8 s bounds it.
    assert!(took < Duration::from_secs(9), "took {took:?}");
    server.stop();
    assert_eq!(last_reason(&node), "directory_unavailable");
}

#[test]
fn users_mfad_does_not_know_pass_on_their_directory_password_and_names_are_escaped() {
    let mut ldif = seed(0);
    // In no sync item: known to the directory, not to mfad.
    ldif.push_str(&person_ldif(
        "guest1",
        &format!("ou=guests,ou=people,{BASE_DN}"),
        "Guest",
        "One",
        "pw-guest",
    ));
    let slapd = Slapd::start(&ldif);
    let node = first_factor_node(&slapd, &["--require-user-match", "false"], "");
    let server = node.start();
    let send = |user: &str, password: &str| {
        Radclient::new(server.radius_addr(), SECRET)
            .send("auth", &[("User-Name", user), ("User-Password", password)])
    };
    assert!(
        send("guest1", "pw-guest").is("Access-Accept"),
        "first factor only"
    );
    assert!(send("guest1", "wrong").is("Access-Reject"));
    assert!(
        send("guest1", "").is("Access-Reject"),
        "an empty password is never a bind"
    );
    // RFC 4515: unescaped, (uid=gues*) would find guest1 and the bind would succeed.
    let wildcard = send("gues*", "pw-guest");
    assert!(wildcard.is("Access-Reject"), "{}", wildcard.output);
    let injected = send("x)(uid=guest1", "pw-guest");
    assert!(injected.is("Access-Reject"), "{}", injected.output);
    server.stop();
}

/// An AD-style user entry (`msuser` schema); `extensibleObject` admits sAMAccountName,
/// which that schema has in no class.
fn ad_user(cn: &str, upn: Option<&str>, sam: &str, uac: u32, guid_base64: &str) -> String {
    let upn = upn
        .map(|u| format!("userPrincipalName: {u}\n"))
        .unwrap_or_default();
    format!(
        "dn: cn={cn},ou=people,{BASE_DN}\nobjectClass: user\nobjectClass: extensibleObject\n\
         cn: {cn}\nsn: {cn}\ngivenName: {cn}\n{upn}sAMAccountName: {sam}\nuserAccountControl: {uac}\n\
         instanceType: 4\nnTSecurityDescriptor:: AQAEgA==\n\
         objectCategory: {category}\n\
         objectGUID:: {guid_base64}\nuserPassword: pw-{sam}\n\n",
        category = person_category_dn()
    )
}

#[test]
fn active_directory_preset_maps_object_guid_upn_fallback_and_the_disabled_bit() {
    let mut ldif = base_ldif();
    // objectGUID bytes 67 45 23 01 ab 89 ef cd 01 23 45 67 89 ab cd ef, i.e. the GUID
    // {01234567-89ab-cdef-0123-456789abcdef} ([MS-DTYP] §2.3.4 byte order).
    ldif.push_str(&ad_user(
        "Alice",
        Some("Alice@Example.org"),
        "alice",
        512,
        "Z0UjAauJ780BI0VniavN7w==",
    ));
    ldif.push_str(&ad_user(
        "Bob",
        None,
        "bob",
        512,
        "AQIDBAUGBwgJCgsMDQ4PEA==",
    ));
    ldif.push_str(&ad_user(
        "Carol",
        Some("carol@example.org"),
        "carol",
        514,
        "EBEREhMUFRYXGBkaGxwdHg==",
    ));
    // A computer account: objectClass user as well, objectCategory Computer.
    ldif.push_str(
        &ad_user("WS01", None, "ws01$", 4096, "ICEiIyQlJicoKSorLC0uLw==").replace(
            &person_category_dn(),
            &format!("CN=Computer,CN=Schema,CN=Configuration,{BASE_DN}"),
        ),
    );
    let slapd = Slapd::start(&ldif);
    // The preset's own filter, (&(objectCategory=person)(objectClass=user)): the
    // computer account is a user too, but of another category.
    let config = directory_config(&slapd, "")
        .replace("preset = \"openldap\"", "preset = \"active-directory\"");
    let node = mfad(&config);
    let out = node.cli_ok(["directory", "import"]);
    assert!(
        out.contains("added 2, updated 0, unchanged 1"),
        "a disabled account and a computer are not added: {out}"
    );
    node.cli_err(["user", "show", "ws01$"]);
    let alice = user_json(&node, "alice@example.org");
    assert_eq!(
        alice["directory_id"],
        "01234567-89ab-cdef-0123-456789abcdef"
    );
    assert_eq!(alice["given_name"], "Alice");
    let bob = user_json(&node, "bob");
    assert_eq!(
        bob["directory_id"], "04030201-0605-0807-090a-0b0c0d0e0f10",
        "sAMAccountName fallback"
    );
    node.cli_err(["user", "show", "carol@example.org"]);

    // Disabling the account in AD (ACCOUNTDISABLE, 0x2) disables the mfad user.
    slapd.modify(&format!(
        "dn: cn=Alice,ou=people,{BASE_DN}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n\n"
    ));
    let out = node.cli_ok(["directory", "sync"]);
    assert!(out.contains("updated 1"), "{out}");
    assert_eq!(user_json(&node, "alice@example.org")["enabled"], false);
}

/// An Active Directory node (AD preset, slapd with the `msuser` schema) with alice
/// stored by her UPN and an HOTP token, dave's entry not one of mfad's users, and one
/// client that lets unknown users in on `first_factor` alone. The directory runs while
/// the returned `Slapd` lives.
fn ad_node_letting_unknown_users_in(first_factor: &str) -> (Mfad, Slapd) {
    let mut ldif = base_ldif();
    ldif.push_str(&ad_user(
        "Alice",
        Some("alice@example.org"),
        "alice",
        512,
        "Z0UjAauJ780BI0VniavN7w==",
    ));
    ldif.push_str(&ad_user(
        "Dave",
        Some("dave@example.org"),
        "dave",
        512,
        "AQIDBAUGBwgJCgsMDQ4PEA==",
    ));
    let slapd = Slapd::start(&ldif);
    let config = directory_config(&slapd, "")
        .replace("preset = \"openldap\"", "preset = \"active-directory\"");
    let node = mfad(&config);
    node.cli_ok(["directory", "import"]);
    node.cli_ok(["user", "delete", "dave@example.org"]);
    node.cli_ok([
        "token",
        "add",
        "alice@example.org",
        "--type",
        "hotp",
        "--secret",
        SEED,
        "--serial",
        "hw-1",
    ]);
    node.add_client_with(
        "vpn",
        "127.0.0.1",
        SECRET,
        &[
            "--first-factor",
            first_factor,
            "--require-user-match",
            "false",
        ],
    );
    (node, slapd)
}

/// alice is stored by her UPN; her sAMAccountName, `EXAMPLE\alice` and other case forms
/// name the same directory entry, so each needs her code after the directory password,
/// and the challenge issued to one form is answered under it.
#[test]
fn no_form_of_a_directory_users_name_skips_the_second_factor() {
    let (node, _slapd) = ad_node_letting_unknown_users_in("directory");
    let server = node.start();
    let send = |user: &str, password: &str, state: Option<&str>| {
        let mut attrs = vec![("User-Name", user), ("User-Password", password)];
        if let Some(state) = state {
            attrs.push(("State", state));
        }
        Radclient::new(server.radius_addr(), SECRET).send("auth", &attrs)
    };
    for name in ["alice", "EXAMPLE\\alice", "ALICE", "Alice@Example.org"] {
        let reply = send(name, "pw-alice", None);
        assert!(
            reply.is("Access-Challenge"),
            "{name} with the password alone must be asked for the code: {}",
            reply.output
        );
    }
    let challenge = send("alice", "pw-alice", None);
    let state = challenge.get("State").unwrap().to_owned();
    let accepted = send("alice", &oathtool_hotp(SEED, 0, 6), Some(&state));
    assert!(accepted.is("Access-Accept"), "{}", accepted.output);
    // A directory user who is not one of mfad's users still passes on the password.
    assert!(send("dave", "pw-dave", None).is("Access-Accept"));
    server.stop();
}

/// The same with a client whose VPN checked the password (`first_factor = none`): an
/// alias of alice never gets in without her code.
#[test]
fn no_alias_passes_a_client_without_a_first_factor_without_the_code() {
    let (node, _slapd) = ad_node_letting_unknown_users_in("none");
    let server = node.start();
    let send = |user: &str, password: &str| {
        Radclient::new(server.radius_addr(), SECRET)
            .send("auth", &[("User-Name", user), ("User-Password", password)])
    };
    for name in ["alice", "EXAMPLE\\alice", "ALICE"] {
        let reply = send(name, "");
        assert!(!reply.is("Access-Accept"), "{name}: {}", reply.output);
    }
    assert!(send("EXAMPLE\\alice", &oathtool_hotp(SEED, 0, 6)).is("Access-Accept"));
    assert!(send("dave", "").is("Access-Accept"), "not an mfad user");
    server.stop();
}

/// Every reject leaves the reject delay after its request, whatever deciding took: a
/// known user whose directory lookup hangs until its timeout, a name nobody has (the
/// directory is asked about it too), and a blocked user (nothing asked) are answered at
/// the same time, so the timing tells nothing about who exists or why.
#[test]
fn rejects_take_the_same_time_whoever_is_rejected() {
    // A directory that takes connections and never answers: every search or bind waits
    // for the timeout.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let node = mfad(&format!(
        "reject_delay_ms = 1500\n\n[directory]\nservers = [\"ldap://{}\"]\npreset = \"openldap\"\n\
         starttls = false\nbase_dn = \"{BASE_DN}\"\nconnect_timeout_ms = 400\ntimeout_ms = 400\n",
        hole.local_addr().unwrap()
    ));
    node.add_client_with("vpn", "127.0.0.1", SECRET, &["--first-factor", "directory"]);
    for user in ["alice", "bob"] {
        node.cli_ok(["user", "add", user]);
        node.cli_ok(["token", "add", user, "--type", "hotp", "--secret", SEED]);
    }
    node.cli_ok(["user", "block", "bob", "--reason", "lost phone"]);
    let server = node.start();
    let timed = |user: &str| {
        let started = Instant::now();
        let reply = Radclient::new(server.radius_addr(), SECRET)
            .send("auth", &[("User-Name", user), ("User-Password", "000000")]);
        assert!(reply.is("Access-Reject"), "{user}: {}", reply.output);
        started.elapsed()
    };
    for user in ["alice", "nobody", "bob"] {
        let took = timed(user);
        // The directory's timeout alone is 400 ms: padded on top of the delay, the
        // reject would come after 1,900 ms or more.
        assert!(
            took >= Duration::from_millis(1_500) && took < Duration::from_millis(1_850),
            "{user}: rejected after {took:?}, not at the reject delay"
        );
    }
    server.stop();
}

#[test]
fn users_added_by_an_import_or_sync_get_the_welcome_mail_once() {
    let mail = mfad_testkit::SmtpServer::start(mfad_testkit::SmtpMode::Plain, None, None);
    let slapd = Slapd::start(&seed(1));
    let smtp = format!(
        "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
         from = \"MFA <mfa@example.org>\"\n\n[email]\nsend_to_users = true\n",
        mail.port()
    );
    let node = mfad(&format!(
        "{}{smtp}",
        directory_config(&slapd, &staff_item())
    ));
    let out = node.cli_ok(["directory", "import"]);
    assert!(
        out.contains("queued the welcome e-mail for 2 new users"),
        "{out}"
    );
    let mails = mail.wait_for_messages(2, Duration::from_secs(30));
    let mut to: Vec<String> = mails.iter().map(|m| m.to.join(",")).collect();
    to.sort();
    assert_eq!(to, ["alice@example.org", "user0@example.org"]);
    assert!(
        mails[0].body().contains("hardware token"),
        "the mail for the item's method (token): {}",
        mails[0].body()
    );

    let again = node.cli_ok(["directory", "sync"]);
    assert!(!again.contains("queued the welcome"), "{again}");
    // `mfad email send` is the way to send it again; a sync never does.
    let status = node.cli_ok(["email", "status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status.as_array().unwrap().len(), 2, "{status}");
    assert_eq!(mail.messages().len(), 2);
}

/// `[smtp]` to `mail` and `[email] send_to_users`, for `directory_config`'s output.
fn mail_config(mail: &SmtpServer) -> String {
    format!(
        "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
         from = \"MFA <mfa@example.org>\"\n\n[email]\nsend_to_users = true\n",
        mail.port()
    )
}

/// The staff item with PIN mode, initial PINs on, and PIN rules stricter than the
/// defaults so that a PIN following them is recognisable.
fn pin_item_config(slapd: &Slapd, extra: &str) -> String {
    directory_config(
        slapd,
        &format!(
            "generate_pins = true\n{extra}{}pin_mode = \"pin\"\n\n[policy.pin]\nmin_length = 6\n",
            staff_item()
        ),
    )
}

/// The initial PIN a welcome mail holds, checked against the rules of `pin_item_config`.
fn initial_pin_in(mail: &ReceivedMail, phone: &str) -> String {
    let body = mail.body();
    let pin: String = body
        .split("Your initial PIN is ")
        .nth(1)
        .unwrap_or_else(|| panic!("no initial PIN in the mail: {body}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let rules = mfad_core::policy::PinRules {
        min_length: 6,
        ..Default::default()
    };
    mfad_core::pin::check(&pin, &rules, phone, &[])
        .unwrap_or_else(|e| panic!("the mailed PIN {pin} breaks the rules: {e}"));
    pin
}

#[test]
fn an_import_through_a_pin_item_mails_a_generated_pin_that_must_be_changed() {
    let mail = SmtpServer::start(SmtpMode::Plain, None, None);
    let slapd = Slapd::start(&seed(0));
    let node = mfad(&format!(
        "{}{}",
        pin_item_config(&slapd, ""),
        mail_config(&mail)
    ));
    node.add_client("vpn", "127.0.0.1", SECRET);
    let out = node.cli_ok(["directory", "import"]);
    assert!(
        out.contains("queued the welcome e-mail for 1 new users (1 with an initial PIN)"),
        "{out}"
    );
    let alice = user_json(&node, "alice");
    assert_eq!(alice["pin_mode"], "pin", "the item's PIN mode");
    assert_eq!(alice["pin_change_required"], true);
    let mails = mail.wait_for_messages(1, Duration::from_secs(30));
    assert_eq!(mails[0].to, ["alice@example.org"]);
    let pin = initial_pin_in(&mails[0], alice["phone"].as_str().unwrap());
    assert!(!out.contains(&pin), "the PIN is only in the mail: {out}");

    // The PIN works, and the first login asks for a new one.
    node.cli_ok([
        "token", "add", "alice", "--type", "hotp", "--secret", SEED, "--serial", "hw-1",
    ]);
    let server = node.start();
    let client = Radclient::new(server.radius_addr(), SECRET);
    let send = |password: &str, state: Option<&str>| {
        let mut attrs = vec![("User-Name", "alice"), ("User-Password", password)];
        if let Some(state) = state {
            attrs.push(("State", state));
        }
        client.send("auth", &attrs)
    };
    let wrong = format!(
        "{}{}",
        if pin == "258036" { "147025" } else { "258036" },
        oathtool_hotp(SEED, 0, 6)
    );
    assert!(send(&wrong, None).is("Access-Reject"), "another PIN");
    let prompt = send(&format!("{pin}{}", oathtool_hotp(SEED, 0, 6)), None);
    assert!(prompt.is("Access-Challenge"), "{}", prompt.output);
    assert!(
        prompt.get("Reply-Message").unwrap().contains("new PIN"),
        "{}",
        prompt.output
    );
    let state = prompt.get("State").unwrap().to_string();
    let confirm = send("319708", Some(&state));
    assert!(confirm.is("Access-Challenge"), "{}", confirm.output);
    let state = confirm.get("State").unwrap().to_string();
    assert!(send("319708", Some(&state)).is("Access-Accept"));
    assert!(send(&format!("319708{}", oathtool_hotp(SEED, 1, 6)), None).is("Access-Accept"));
    server.stop();

    // A second sync generates nothing and sends nothing.
    let again = node.cli_ok(["directory", "sync"]);
    assert!(again.contains("added 0"), "{again}");
    assert!(
        !again.contains("queued") && !again.contains("PIN"),
        "{again}"
    );
    assert_eq!(user_json(&node, "alice")["pin_change_required"], false);
    assert_eq!(mail.messages().len(), 1);
}

#[test]
fn without_mail_to_users_no_initial_pin_is_made_and_the_summary_says_so() {
    let slapd = Slapd::start(&seed(0));
    let node = mfad(&pin_item_config(&slapd, ""));
    let out = node.cli_ok(["directory", "import"]);
    assert!(
        out.contains("no initial PIN for 1 new PIN users (alice: [email] send_to_users is off)"),
        "{out}"
    );
    assert!(out.contains("mfad user set-pin USER --generate"), "{out}");
    let alice = user_json(&node, "alice");
    assert_eq!(alice["pin_mode"], "pin");
    let shown = node.cli_ok(["user", "show", "alice"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("pin set") && l.ends_with("no")),
        "{shown}"
    );
}

#[test]
fn the_scheduled_sync_welcomes_users_added_while_it_runs() {
    let mail = SmtpServer::start(SmtpMode::Plain, None, None);
    let slapd = Slapd::start(&seed(0));
    let node = mfad(&format!(
        "{}{}",
        pin_item_config(&slapd, "sync_interval = \"1m\"\n"),
        mail_config(&mail)
    ));
    let server = node.start();
    let first = mail.wait_for_messages(1, Duration::from_secs(30));
    assert_eq!(first[0].to, ["alice@example.org"], "{}", server.logs());
    initial_pin_in(&first[0], "+15550000005");

    slapd.modify(&person_ldif("bob", &staff(), "Bob", "Builder", "pw-bob"));
    // The next scheduled run is a minute after the first.
    let mails = mail.wait_for_messages(2, Duration::from_secs(150));
    assert_eq!(mails.len(), 2, "{}", server.logs());
    assert_eq!(mails[1].to, ["bob@example.org"]);
    let bob_pin = initial_pin_in(&mails[1], "+15550000003");
    let logged = format!("initial PIN is {bob_pin}");
    assert!(!server.logs().contains(&logged), "{}", server.logs());
    server.stop();
    let bob = user_json(&node, "bob");
    assert_eq!(
        (
            bob["pin_mode"].as_str(),
            bob["pin_change_required"].as_bool()
        ),
        (Some("pin"), Some(true))
    );
}

#[test]
fn a_directory_phone_change_of_an_sms_user_waits_for_approval_and_the_user_is_told() {
    let mail = SmtpServer::start(SmtpMode::Plain, None, None);
    let slapd = Slapd::start(&seed(1));
    // Mail configured, but no welcome or update mails: the notice goes regardless.
    let smtp = format!(
        "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
         from = \"MFA <mfa@example.org>\"\n\n[email]\nsend_updates = false\n",
        mail.port()
    );
    let sms_item = staff_item().replace("method = \"token\"", "method = \"sms\"");
    let node = mfad(&format!("{}{smtp}", directory_config(&slapd, &sms_item)));
    node.cli_ok(["directory", "import"]);
    node.cli_ok(["user", "update", "user0", "--method", "app"]);
    let old = user_json(&node, "alice")["phone"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(user_json(&node, "alice")["method"], "sms");

    // Each user may write their own telephoneNumber in AD; here the admin stands in.
    let new_number = |uid: &str, number: &str| {
        format!(
            "dn: uid={uid},{}\nchangetype: modify\nreplace: telephoneNumber\ntelephoneNumber: {number}\n\n",
            staff()
        )
    };
    slapd.modify(&format!(
        "{}{}",
        new_number("alice", "+15559990001"),
        new_number("user0", "+15559990002")
    ));
    let out = node.cli_ok(["directory", "sync"]);
    assert!(
        out.contains("updated 1") && out.contains("phone changes held for approval: 1 (alice)"),
        "{out}"
    );
    assert!(out.contains("queued the notice"), "{out}");
    assert_eq!(
        user_json(&node, "alice")["phone"],
        old.as_str(),
        "the SMS user's phone is not moved"
    );
    assert_eq!(
        user_json(&node, "user0")["phone"],
        "+15559990002",
        "an app user's phone is no factor and follows the directory"
    );
    let status = node.cli_ok(["directory", "status"]);
    assert!(
        status.contains(&format!("alice: {old} -> +15559990001")),
        "{status}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&node.cli_ok(["directory", "status", "--format", "json"])).unwrap();
    assert_eq!(json["pending_phones"][0]["new_phone"], "+15559990001");

    let notices = mail.wait_for_messages(1, Duration::from_secs(30));
    let [notice] = notices.as_slice() else {
        panic!("one notice expected: {notices:?}");
    };
    assert_eq!(notice.to, ["alice@example.org"]);
    let body = notice.body();
    assert!(
        body.contains("+15559990001") && body.contains(&old) && body.contains("help desk"),
        "{body}"
    );

    // Still held by the next sync, and the user is told once.
    let again = node.cli_ok(["directory", "sync"]);
    assert!(again.contains("held for approval: 1 (alice)"), "{again}");
    assert!(!again.contains("queued the notice"), "{again}");
    assert_eq!(user_json(&node, "alice")["phone"], old.as_str());
    let err = node.cli_err(["directory", "approve-phone", "user0"]);
    assert!(err.contains("held phone change for user 'user0'"), "{err}");

    let approved = node.cli_ok(["directory", "approve-phone", "alice"]);
    assert!(
        approved.contains("alice now uses +15559990001"),
        "{approved}"
    );
    assert_eq!(user_json(&node, "alice")["phone"], "+15559990001");
    assert!(!node.cli_ok(["directory", "status"]).contains("alice:"));
    let after = node.cli_ok(["directory", "sync"]);
    assert!(
        after.contains("updated 0, unchanged 2") && !after.contains("held for approval"),
        "{after}"
    );
    assert_eq!(mail.messages().len(), 1, "no further mail");
}

#[test]
fn a_directory_that_refuses_starttls_is_named_with_what_to_do() {
    let slapd = Slapd::start_without_tls(&seed(0));
    let config = |extra: &str| {
        format!(
            "[directory]\nservers = [\"{}\"]\npreset = \"openldap\"\nbind_dn = \"{ADMIN_DN}\"\n\
             bind_password_file = \"{}\"\nbase_dn = \"{BASE_DN}\"\nconnect_timeout_ms = 2000\n\
             timeout_ms = 2000\n{extra}{}",
            slapd.url(),
            slapd.admin_password_file().display(),
            staff_item()
        )
    };
    let stderr = mfad(&config("")).cli_err(["directory", "import"]);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    let [err] = errors[..] else {
        panic!("one error line: {stderr}");
    };
    for says in [
        "refused StartTLS",
        "ldaps://",
        "directory.ca_file",
        "directory.starttls = false",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }

    // On a trusted network the operator turns StartTLS off and the import works.
    let node = mfad(&config("starttls = false\n"));
    node.cli_ok(["directory", "import"]);
    assert!(node.cli_ok(["user", "list"]).contains("alice"));
}

#[test]
fn directory_phone_numbers_are_stored_as_e164_and_the_rest_is_reported() {
    let written = |uid: &str, given: &str, phone: &str| {
        person_ldif(uid, &staff(), given, "Example", "pw").replace(
            &format!("telephoneNumber: +1555{:07}\n", uid.len()),
            &format!("telephoneNumber: {phone}\n"),
        )
    };
    let mut ldif = seed(0);
    ldif.push_str(&written("carol", "Carol", "+1 425 555 0000"));
    ldif.push_str(&written("dave", "Dave", "ask reception"));
    let slapd = Slapd::start(&ldif);
    let node = mfad(&directory_config(&slapd, &staff_item()));

    let out = node.cli_ok(["directory", "import"]);
    assert!(out.contains("added 3,"), "{out}");
    assert!(
        out.contains("phone numbers kept as written (not E.164") && out.contains(": 1 (dave)"),
        "{out}"
    );
    assert_eq!(user_json(&node, "carol")["phone"], "+14255550000");
    assert_eq!(user_json(&node, "dave")["phone"], "ask reception");
    assert_eq!(user_json(&node, "alice")["phone"], "+15550000005");

    // Already stored in E.164, the next sync finds nothing to change.
    let again = node.cli_ok(["directory", "import"]);
    assert!(again.contains("updated 0, unchanged 3"), "{again}");
}
