//! The operator CLI and configuration, driven through the real binary.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_testkit::{oathtool_totp, Mfad, Radclient};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mfad"))
}

#[test]
fn token_add_prints_an_otpauth_uri_that_oathtool_agrees_with() {
    let node = Mfad::new(bin());
    node.cli_ok(["user", "add", "bob", "--email", "bob@example.org"]);
    let out = node.cli_ok(["token", "add", "bob", "--type", "totp", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let uri = v["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/mfad:bob%40example.org?secret="),
        "{uri}"
    );
    assert!(
        uri.contains("&issuer=mfad&algorithm=SHA1&digits=6&period=30"),
        "{uri}"
    );
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_eq!(secret.len(), 32, "160-bit secret in unpadded base32");

    node.cli_ok([
        "client",
        "add",
        "vpn",
        "--address",
        "127.0.0.1/32",
        "--secret",
        "0123456789abcdef-x",
    ]);
    let server = node.start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = oathtool_totp(secret, now, 6, "sha1", 30);
    let reply = Radclient::new(server.radius_addr(), "0123456789abcdef-x")
        .send("auth", &[("User-Name", "bob"), ("User-Password", &code)]);
    assert!(reply.is("Access-Accept"), "{}", reply.output);
    server.stop();
}

#[test]
fn token_add_draws_a_qr_code() {
    let node = Mfad::new(bin());
    node.cli_ok(["user", "add", "bob"]);
    let out = node.cli_ok([
        "token",
        "add",
        "bob",
        "--qr",
        "--digits",
        "8",
        "--algorithm",
        "sha256",
    ]);
    assert!(
        out.contains('█') || out.contains('▀') || out.contains('▄'),
        "{out}"
    );
    assert!(out.contains("algorithm=SHA256&digits=8"), "{out}");
}

#[test]
fn errors_are_one_line_and_say_what_to_do() {
    let node = Mfad::new(bin());
    let err = node.cli_err(["token", "add", "nobody"]);
    assert!(err.contains("user 'nobody' does not exist"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    node.cli_ok(["user", "add", "carol"]);
    let err = node.cli_err(["user", "add", "Carol"]);
    assert!(err.contains("already exists"), "{err}");
    let err = node.cli_err(["token", "add", "carol", "--secret", "JBSWY3DPEHPK3PXP"]);
    assert!(err.contains("128 bits"), "{err}");
    let err = node.cli_err([
        "client",
        "add",
        "x",
        "--address",
        "not-an-ip",
        "--secret",
        "s",
    ]);
    assert!(err.contains("not an IP address"), "{err}");
    let err = node.cli_err(["client", "remove", "ghost"]);
    assert!(err.contains("client 'ghost' does not exist"), "{err}");
    let warn = node.cli([
        "client",
        "add",
        "short",
        "--address",
        "10.0.0.1",
        "--secret",
        "short",
    ]);
    assert!(warn.status.success());
    assert!(String::from_utf8_lossy(&warn.stderr).contains("at least 16"));
}

#[test]
fn lists_have_json_for_scripts() {
    let node = Mfad::new(bin());
    node.cli_ok([
        "user",
        "add",
        "dave",
        "--phone",
        "+15550100",
        "--pin-mode",
        "pin",
    ]);
    node.cli_ok(["token", "add", "dave", "--type", "hotp", "--serial", "d-1"]);
    node.cli_ok([
        "client",
        "add",
        "vpn",
        "--address",
        "10.0.0.0/24",
        "--secret",
        "0123456789abcdef-x",
    ]);
    let users: serde_json::Value =
        serde_json::from_str(&node.cli_ok(["user", "list", "--format", "json"])).unwrap();
    assert_eq!(users[0]["username"], "dave");
    assert_eq!(users[0]["pin_mode"], "pin");
    assert!(users[0].get("pin_hash").is_none());
    let tokens: serde_json::Value =
        serde_json::from_str(&node.cli_ok(["token", "list", "--format", "json"])).unwrap();
    assert_eq!(tokens[0]["serial"], "d-1");
    assert!(
        tokens[0].get("secret").is_none(),
        "secrets are never printed"
    );
    let clients = node.cli_ok(["client", "list", "--format", "json"]);
    assert!(
        clients.contains("10.0.0.0/24") && !clients.contains("0123456789abcdef"),
        "{clients}"
    );
    let table = node.cli_ok(["user", "list"]);
    assert!(table.starts_with("username"), "{table}");
}

#[test]
fn hardware_tokens_import_and_resync() {
    let node = Mfad::new(bin());
    let csv = node.dir().join("tokens.csv");
    std::fs::write(
        &csv,
        "# serial, secret, interval\nhw-100, GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ, 0\n",
    )
    .unwrap();
    let out = node.cli_ok(["token", "import", csv.to_str().unwrap()]);
    assert!(out.contains("imported 1"), "{out}");
    let again = node.cli_err(["token", "import", csv.to_str().unwrap()]);
    assert!(again.contains("nothing imported"), "{again}");
    node.cli_ok(["user", "add", "erin"]);
    node.cli_ok(["token", "assign", "hw-100", "erin"]);
    // RFC 4226 Appendix D: counters 40 and 41 are far beyond the look-ahead window.
    let c40 = mfad_testkit::oathtool_hotp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 40, 6);
    let c41 = mfad_testkit::oathtool_hotp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 41, 6);
    let out = node.cli_ok(["token", "resync", "erin", &c40, &c41]);
    assert!(out.contains("hw-100"), "{out}");
    let list: serde_json::Value =
        serde_json::from_str(&node.cli_ok(["token", "list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["next"], 42);
}

#[test]
fn serve_runs_with_no_config_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("MFAD_CONFIG")
        // Only the port differs from the defaults, through the environment overlay.
        .env("MFAD__RADIUS__LISTEN", "127.0.0.1:0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let line = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("radius listening on")))
        .unwrap()
        .unwrap();
    assert!(line.contains("127.0.0.1:"), "{line}");
    let key = dir.path().join("mfad-data/mfad.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap().trim().len(),
        64,
        "a 256-bit key in hex"
    );
    assert!(dir.path().join("mfad-data/mfad.db").exists());
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "clean exit on SIGTERM");
}

#[test]
fn unknown_config_keys_are_rejected_by_name() {
    let node = Mfad::new(bin()).with_config("[policy]\nmax_failure = 3\n");
    let err = node.cli_err(["user", "list"]);
    assert!(err.contains("max_failure"), "{err}");
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_stored_setting_is_set_read_listed_and_unset() {
    let node = Mfad::new(bin());
    let before = json(&node.cli_ok(["setting", "get", "policy.max_failures", "--format", "json"]));
    assert_eq!(before["value"], "10", "the default: {before}");
    assert_eq!(before["stored"], false);

    node.cli_ok(["setting", "set", "policy.max_failures", "3"]);
    node.cli_ok([
        "setting",
        "set",
        "portal.url",
        "https://mfa.example.org/portal",
    ]);
    let got = json(&node.cli_ok(["setting", "get", "policy.max_failures", "--format", "json"]));
    assert_eq!(got["value"], "3", "{got}");
    assert_eq!(got["stored"], true);
    let list = json(&node.cli_ok(["setting", "list", "--format", "json"]));
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["policy.max_failures", "portal.url"]);
    assert_eq!(
        list[1]["value"], "\"https://mfa.example.org/portal\"",
        "plain text is stored as a TOML string: {list}"
    );

    node.cli_ok(["setting", "unset", "policy.max_failures"]);
    let after = json(&node.cli_ok(["setting", "get", "policy.max_failures", "--format", "json"]));
    assert_eq!(after["value"], "10", "the config's value again: {after}");
    assert_eq!(after["stored"], false);
    let err = node.cli_err(["setting", "unset", "policy.max_failures"]);
    assert!(err.contains("is not stored"), "{err}");
}

#[test]
fn bad_setting_keys_and_values_are_refused_in_one_line_and_change_nothing() {
    let node = Mfad::new(bin());
    let cases: [(&[&str], &str); 5] = [
        (
            &["setting", "set", "policy.max_failure", "3"],
            "max_failure",
        ),
        (
            &["setting", "set", "policy.max_failures", "1000"],
            "policy.max_failures must be between 1 and 100",
        ),
        (
            &["setting", "set", "policy.max_failures", "many"],
            "policy.max_failures",
        ),
        (
            &["setting", "set", "radius.listen", "0.0.0.0:1812"],
            "set it in the config file",
        ),
        (
            &["setting", "set", "nosuch.key", "1"],
            "unknown setting 'nosuch.key'",
        ),
    ];
    for (args, want) in cases {
        let err = node.cli_err(args);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    for key in ["store.url", "store.key_file"] {
        let err = node.cli_err(["setting", "set", key, "x"]);
        assert!(err.contains("config file"), "{key}: {err}");
    }
    let err = node.cli_err([
        "setting",
        "set",
        "sms.twilio.auth_token",
        "on-the-command-line",
    ]);
    assert!(err.contains("--secret"), "{err}");
    let list = json(&node.cli_ok(["setting", "list", "--format", "json"]));
    assert_eq!(list, serde_json::json!([]), "nothing was stored");
}

#[test]
fn a_secret_setting_is_read_from_stdin_stored_encrypted_and_never_shown() {
    let node = Mfad::new(bin());
    const TOKEN: &str = "stored-twilio-token-5b0e77";
    let out = node.cli_with_input(
        ["setting", "set", "sms.twilio.auth_token", "--secret"],
        format!("{TOKEN}\n").as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(TOKEN), "{stdout}");
    for args in [
        &["setting", "list"][..],
        &["setting", "list", "--format", "json"],
        &[
            "setting",
            "get",
            "sms.twilio.auth_token",
            "--format",
            "json",
        ],
    ] {
        let shown = node.cli_ok(args);
        assert!(!shown.contains(TOKEN), "{args:?}: {shown}");
        assert!(shown.contains("sms.twilio.auth_token"), "{shown}");
    }
    let got = json(&node.cli_ok([
        "setting",
        "get",
        "sms.twilio.auth_token",
        "--format",
        "json",
    ]));
    assert_eq!(got["secret"], true);
    assert_eq!(got["value"], serde_json::Value::Null);

    let db = std::fs::read(node.dir().join("mfad.db")).unwrap();
    let wal = std::fs::read(node.dir().join("mfad.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is stored encrypted"
        );
    }
    let err = node.cli_err(["setting", "set", "policy.max_failures", "--secret"]);
    assert!(err.contains("not a credential"), "{err}");
}

#[test]
fn a_broken_template_is_refused_naming_the_template_and_line() {
    let node = Mfad::new(bin());
    let file = node.dir().join("welcome.txt");
    std::fs::write(
        &file,
        "Subject: Welcome\n\nHello {{ given_name }},\n{% if pin %}\n",
    )
    .unwrap();
    let err = node.cli_err([
        "template".as_ref(),
        "set".as_ref(),
        "welcome-app.en.txt".as_ref(),
        "--file".as_ref(),
        file.as_os_str(),
    ]);
    assert!(
        err.contains("welcome-app.en.txt") && err.contains("line"),
        "{err}"
    );
    let list = json(&node.cli_ok(["template", "list", "--format", "json"]));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|t| t["source"] == "shipped"),
        "nothing stored: {list}"
    );

    std::fs::write(&file, "Subject: Willkommen\n\nHallo {{ given_name }}\n").unwrap();
    node.cli_ok([
        "template".as_ref(),
        "set".as_ref(),
        "welcome-app.de.txt".as_ref(),
        "--file".as_ref(),
        file.as_os_str(),
    ]);
    let shown = node.cli_ok(["template", "show", "welcome-app.de.txt"]);
    assert!(shown.contains("Hallo {{ given_name }}"), "{shown}");
    let err = node.cli_err([
        "template".as_ref(),
        "set".as_ref(),
        "welcome-nothing.en.txt".as_ref(),
        "--file".as_ref(),
        file.as_os_str(),
    ]);
    assert!(err.contains("unknown name"), "{err}");
    node.cli_ok(["template", "unset", "welcome-app.de.txt"]);
    let err = node.cli_err(["template", "unset", "welcome-app.de.txt"]);
    assert!(err.contains("is not stored"), "{err}");
}

#[test]
fn a_stored_setting_that_no_longer_fits_the_file_is_reported_and_can_be_unset() {
    let with_smtp = Mfad::new(bin()).with_config(
        "[smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\nfrom = \"MFA <mfa@example.org>\"\n",
    );
    with_smtp.cli_ok(["setting", "set", "email.send_to_users", "true"]);
    // Another node of the same store whose file has no [smtp]: the stored setting does
    // not fit it, so it runs on its file alone and says so.
    let without = Mfad::new(bin()).sharing_store_with(&with_smtp);
    let out = without.cli(["user", "list"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stored settings are not applied") && stderr.contains("smtp.host"),
        "{stderr}"
    );
    without.cli_ok(["setting", "unset", "email.send_to_users"]);
    let out = without.cli(["user", "list"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Terminal escapes: a title change, a screen clear and a colour, and a one-byte C1 CSI.
const ESCAPED_NAME: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31mroot\u{9b}0m";
const FORMULA_NAME: &str = "=HYPERLINK(\"http://evil.example/\",\"click\")";

/// No byte that a terminal acts on: C0 controls other than the line ends, DEL, C1.
fn assert_inert(out: &str, what: &str) {
    let bad: Vec<char> = out
        .chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect();
    assert!(bad.is_empty(), "{what} prints {bad:?} raw:\n{out:?}");
}

#[test]
fn log_shows_an_attackers_user_name_harmlessly_in_tables_and_csv() {
    let node = Mfad::new(bin());
    node.add_client("vpn", "127.0.0.1/32", "0123456789abcdef-x");
    let server = node.start();
    let radius = Radclient::new(server.radius_addr(), "0123456789abcdef-x");
    for name in [ESCAPED_NAME, FORMULA_NAME] {
        let reply = radius.send("auth", &[("User-Name", name), ("User-Password", "1")]);
        assert!(reply.is("Access-Reject"), "{}", reply.output);
    }
    server.stop();

    let json = json(&node.cli_ok(["log", "--format", "json"]));
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["username"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("\u{1b}[31m")),
        "the record keeps what was sent: {names:?}"
    );

    let table = node.cli_ok(["log", "--format", "table"]);
    assert_inert(&table, "mfad log --format table");
    assert!(table.contains("\\x1b[31mroot\\u{9b}0m"), "{table}");
    assert_eq!(
        table.lines().count(),
        3,
        "a header and one line each: {table}"
    );

    let csv = node.cli_ok(["log", "--format", "csv"]);
    assert_inert(&csv, "mfad log --format csv");
    let username_cells: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert!(
        username_cells
            .iter()
            .any(|c| c.to_lowercase().starts_with("\"'=hyperlink(")),
        "the formula is text: {csv}"
    );
    assert!(
        !csv.lines().any(|l| l.contains(",=") || l.contains(",\"=")),
        "no cell starts a formula: {csv}"
    );
}

#[test]
fn user_lists_show_typed_names_harmlessly_in_tables_and_csv() {
    let node = Mfad::new(bin());
    node.cli_ok([
        "user",
        "add",
        "mallory",
        "--given-name",
        ESCAPED_NAME,
        "--surname",
        FORMULA_NAME,
        "--phone",
        "+15550100",
    ]);
    for args in [
        &["user", "list"][..],
        &["user", "show", "mallory"],
        &["user", "list", "--format", "csv"],
    ] {
        let out = node.cli_ok(args);
        assert_inert(&out, &args.join(" "));
        assert!(out.contains("\\x1b[31mroot"), "{args:?}: {out}");
    }
    let csv = node.cli_ok(["user", "list", "--format", "csv"]);
    assert!(
        csv.contains(",\"'=HYPERLINK(\"\"http://evil.example/\"\",\"\"click\"\")\","),
        "{csv}"
    );
    assert!(csv.contains(",+15550100,"), "a phone number is kept: {csv}");
}

const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn stderr_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn client_token_and_pin_secrets_are_read_from_files_and_stdin_without_a_warning() {
    let node = Mfad::new(bin());
    let file = |name: &str, text: &str| {
        let path = node.dir().join(name);
        std::fs::write(&path, text).unwrap();
        path.into_os_string()
    };
    let client_secret = file("vpn.secret", "0123456789abcdef-file\n");
    let alice_seed = file("alice.b32", &format!("{SEED}\r\n"));
    let alice_pin = file("alice.pin", "5820\n");
    let mut warnings = String::new();
    let mut run = |args: &[&std::ffi::OsStr], input: &str| {
        warnings.push_str(&stderr_of(&node.cli_with_input(args, input.as_bytes())));
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    run(
        &[
            os("client"),
            os("add"),
            os("vpn"),
            os("--address"),
            os("127.0.0.1/32"),
            os("--secret-file"),
            &client_secret,
        ],
        "",
    );
    run(
        &[
            os("client"),
            os("add"),
            os("lan"),
            os("--address"),
            os("10.7.0.0/16"),
            os("--secret-file"),
            os("-"),
        ],
        "0123456789abcdef-stdin\n",
    );
    for user in ["alice", "bob"] {
        node.cli_ok(["user", "add", user, "--pin-mode", "pin"]);
    }
    run(
        &[
            os("token"),
            os("add"),
            os("alice"),
            os("--type"),
            os("hotp"),
            os("--secret-file"),
            &alice_seed,
        ],
        "",
    );
    run(
        &[
            os("user"),
            os("set-pin"),
            os("alice"),
            os("--pin-file"),
            &alice_pin,
        ],
        "",
    );
    run(
        &[
            os("token"),
            os("add"),
            os("bob"),
            os("--type"),
            os("hotp"),
            os("--secret-file"),
            os("-"),
        ],
        &format!("{SEED}\n"),
    );
    run(
        &[
            os("user"),
            os("set-pin"),
            os("bob"),
            os("--pin-file"),
            os("-"),
        ],
        "6931\n",
    );
    assert_eq!(warnings, "", "no warning for a file or standard input");

    let server = node.start();
    let radius = Radclient::new(server.radius_addr(), "0123456789abcdef-file");
    let code = mfad_testkit::oathtool_hotp(SEED, 0, 6);
    for (user, pin) in [("alice", "5820"), ("bob", "6931")] {
        let reply = radius.send(
            "auth",
            &[
                ("User-Name", user),
                ("User-Password", &format!("{pin}{code}")),
            ],
        );
        assert!(reply.is("Access-Accept"), "{user}: {}", reply.output);
    }
    server.stop();
}

#[test]
fn secrets_given_as_arguments_still_work_with_a_warning() {
    let node = Mfad::new(bin());
    node.cli_ok(["user", "add", "carol", "--pin-mode", "pin"]);
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "client",
                "add",
                "vpn",
                "--address",
                "127.0.0.1/32",
                "--secret",
                "0123456789abcdef-arg",
            ],
            "--secret-file",
        ),
        (
            &["token", "add", "carol", "--type", "hotp", "--secret", SEED],
            "--secret-file",
        ),
        (&["user", "set-pin", "carol", "--pin", "5820"], "--pin-file"),
    ];
    for (args, instead) in cases {
        let stderr = stderr_of(&node.cli(args));
        let warning: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warning.len(), 1, "{args:?}: one line: {stderr}");
        assert!(
            warning[0].contains("process list")
                && warning[0].contains("shell history")
                && warning[0].contains(instead),
            "{args:?}: {stderr}"
        );
    }
    let users = json(&node.cli_ok(["user", "show", "carol", "--format", "json"]));
    assert_eq!(users["tokens"].as_array().unwrap().len(), 1, "{users}");
}

#[test]
fn an_empty_secret_file_or_stdin_is_refused_in_one_line() {
    let node = Mfad::new(bin());
    node.cli_ok(["user", "add", "dave", "--pin-mode", "pin"]);
    let empty = node.dir().join("empty.secret");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    let cases: [&[&str]; 6] = [
        &[
            "client",
            "add",
            "vpn",
            "--address",
            "127.0.0.1",
            "--secret-file",
            empty,
        ],
        &[
            "client",
            "add",
            "vpn",
            "--address",
            "127.0.0.1",
            "--secret-file",
            "-",
        ],
        &["token", "add", "dave", "--secret-file", empty],
        &["token", "add", "dave", "--secret-file", "-"],
        &["user", "set-pin", "dave", "--pin-file", empty],
        &["user", "set-pin", "dave", "--pin-file", "-"],
    ];
    for args in cases {
        let err = node.cli_err(args);
        assert!(err.contains("empty"), "{args:?}: {err}");
        assert!(err.contains("-file"), "names the option: {args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    let clients = json(&node.cli_ok(["client", "list", "--format", "json"]));
    assert_eq!(clients, serde_json::json!([]), "no client was added");
    let dave = json(&node.cli_ok(["user", "show", "dave", "--format", "json"]));
    assert_eq!(dave["tokens"], serde_json::json!([]), "{dave}");
    let shown = node.cli_ok(["user", "show", "dave"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("pin set") && l.ends_with(" no")),
        "no PIN was set: {shown}"
    );
}

#[test]
fn a_list_piped_into_head_ends_quietly_when_the_reader_goes_away() {
    use std::io::BufRead;
    let node = Mfad::new(bin());
    // More than a pipe buffer (64 KiB on Linux) of JSON, so mfad is still writing
    // when the reader closes its end.
    let long_name = "n".repeat(100_000);
    node.cli_ok(["user", "add", "carol", "--given-name", &long_name]);
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(node.config_path())
        .args(["user", "list", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "[\n");
    // The reader (and with it the pipe's only read end) is dropped here, as `head -1` exits.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn set_pin_on_a_user_whose_logins_ignore_the_pin_says_so_and_how_to_require_it() {
    let node = Mfad::new(bin());
    node.cli_ok(["user", "add", "erin"]);
    let out = node.cli(["user", "set-pin", "erin", "--pin", "5820"]);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("logins do not ask for this PIN")
            && stderr.contains("mfad user update erin --pin-mode pin"),
        "{stderr}"
    );
    let generated = node.cli(["user", "set-pin", "erin", "--generate"]);
    assert!(
        stderr_of(&generated).contains("--pin-mode pin"),
        "--generate warns too"
    );
    let pin = String::from_utf8(generated.stdout).unwrap();
    assert_eq!(pin.lines().count(), 1, "stdout is the PIN alone: {pin}");

    node.cli_ok(["user", "update", "erin", "--pin-mode", "pin"]);
    let stderr =
        stderr_of(&node.cli_with_input(["user", "set-pin", "erin", "--pin-file", "-"], b"7391\n"));
    assert!(!stderr.contains("warning"), "{stderr}");
}
