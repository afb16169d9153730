//! FreeRADIUS' `radclient` as the RADIUS client of tests, and a parser for its `-x` output.
//!
//! `radclient -x` (FreeRADIUS 3.2) prints what it sent and received on stdout, each
//! attribute indented by one tab:
//!
//! ```text
//! Sent Access-Request Id 29 from 0.0.0.0:36116 to 127.0.0.1:18121 length 63
//!     User-Name = "alice"
//!     Message-Authenticator = 0x00
//! Received Access-Accept Id 29 from 127.0.0.1:18121 to 127.0.0.1:36116 length 52
//!     Reply-Message = "Hello, \"alice\""
//!     State = 0x0102abcd
//!     Session-Timeout = 60
//! ```
//!
//! Strings are quoted with `\"`, `\\` and octal escapes; octets are `0x` hex; integers and
//! enumerated values are bare. Without an answer it prints
//! `(0) No reply from server for ID 73 socket 3` on stderr; a reply that fails
//! verification (wrong secret, bad Message-Authenticator) is reported on stderr and
//! dropped, so it also reads as no reply here. radclient exits 1 for anything but an
//! Access-Accept, so the exit code is not the answer; the `Received` line is.
//!
//! Message-Authenticator: radclient 3.2.1 sends none unless the request lists the
//! attribute; `Message-Authenticator = 0x00` in the input makes it compute the real
//! HMAC-MD5 (RFC 3579 §3.2), verified on the wire by this crate's tests.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::process::run_with_input;
use crate::require_tool;

const MESSAGE_AUTHENTICATOR: &str = "Message-Authenticator";

/// Sends RADIUS packets to one server with one shared secret.
#[derive(Clone, Debug)]
pub struct Radclient {
    addr: SocketAddr,
    secret: String,
    message_authenticator: bool,
    timeout: Duration,
}

impl Radclient {
    /// A client with Message-Authenticator on (as RFC 3579 and the BlastRADIUS fixes want),
    /// a 3 s timeout and no retransmission.
    pub fn new(addr: SocketAddr, secret: &str) -> Radclient {
        Radclient {
            addr,
            secret: secret.to_owned(),
            message_authenticator: true,
            timeout: Duration::from_secs(3),
        }
    }

    /// Whether requests carry a Message-Authenticator (default: yes).
    pub fn with_message_authenticator(mut self, on: bool) -> Radclient {
        self.message_authenticator = on;
        self
    }

    /// How long to wait for the reply (default 3 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Radclient {
        self.timeout = timeout;
        self
    }

    /// Sends one request and waits for the reply. `code` is radclient's: `auth`
    /// (Access-Request), `acct` (Accounting-Request) or `status` (Status-Server). Values are
    /// written as `Name = "value"`; radclient converts them by the dictionary type, so
    /// `("State", "0x0102")`, `("NAS-Port", "5")` and `("NAS-IP-Address", "10.0.0.1")` work.
    ///
    /// Panics if radclient did not send (unknown attribute, bad code): that is a broken
    /// test, not an answer.
    pub fn send(&self, code: &str, attrs: &[(&str, &str)]) -> RadReply {
        let radclient = require_tool("radclient");
        let mut input = String::new();
        for (name, value) in attrs {
            input.push_str(&format!("{name} = {}\n", quote(value)));
        }
        let listed = attrs
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(MESSAGE_AUTHENTICATOR));
        if self.message_authenticator && !listed {
            input.push_str(MESSAGE_AUTHENTICATOR);
            input.push_str(" = 0x00\n");
        }
        let mut command = Command::new(radclient);
        command
            .arg("-x")
            .args(["-r", "1"])
            .args(["-t", &format!("{:.3}", self.timeout.as_secs_f64())])
            .arg(self.addr.to_string())
            .arg(code)
            .arg(&self.secret);
        // radclient gives up after the timeout itself; the margin covers process start-up.
        let limit = self.timeout + Duration::from_secs(10);
        let (status, stdout, stderr) =
            run_with_input("radclient", command, input.as_bytes(), limit);
        if status.is_none() {
            panic!(
                "radclient to {} hung for {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                self.addr
            );
        }
        if !stdout.lines().any(|l| l.starts_with("Sent ")) {
            panic!(
                "radclient sent nothing to {} ({code}); input:\n{input}stdout:\n{stdout}\nstderr:\n{stderr}",
                self.addr
            );
        }
        let mut reply = parse_reply(&stdout);
        reply.output = format!("{stdout}{stderr}");
        reply
    }
}

impl Radclient {
    /// Sends every request at once (`radclient -p`, all outstanding together) and waits
    /// for the replies; returns how many of each reply code came back, e.g.
    /// `[("Access-Reject", 200)]`. For bursts against lockout and rate limits.
    pub fn burst(&self, code: &str, requests: &[Vec<(&str, &str)>]) -> Vec<(String, usize)> {
        let radclient = require_tool("radclient");
        let mut input = String::new();
        for attrs in requests {
            for (name, value) in attrs {
                input.push_str(&format!("{name} = {}\n", quote(value)));
            }
            if self.message_authenticator {
                input.push_str(MESSAGE_AUTHENTICATOR);
                input.push_str(" = 0x00\n");
            }
            input.push('\n');
        }
        let mut command = Command::new(radclient);
        command
            .arg("-x")
            .args(["-r", "1"])
            .args(["-p", &requests.len().max(1).to_string()])
            .args(["-t", &format!("{:.3}", self.timeout.as_secs_f64())])
            .arg(self.addr.to_string())
            .arg(code)
            .arg(&self.secret);
        let limit = self.timeout + Duration::from_secs(30);
        let (status, stdout, stderr) =
            run_with_input("radclient", command, input.as_bytes(), limit);
        if status.is_none() {
            panic!(
                "radclient burst to {} hung for {limit:?}\nstderr:\n{stderr}",
                self.addr
            );
        }
        let mut counts: Vec<(String, usize)> = Vec::new();
        for line in stdout.lines() {
            let Some(code) = line
                .strip_prefix("Received ")
                .and_then(|rest| rest.split_whitespace().next())
            else {
                continue;
            };
            match counts.iter_mut().find(|(c, _)| c == code) {
                Some((_, n)) => *n += 1,
                None => counts.push((code.to_owned(), 1)),
            }
        }
        counts
    }
}

/// What came back for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RadReply {
    /// `Access-Accept`, `Access-Reject`, `Access-Challenge`, `Accounting-Response`, ...;
    /// `None` if no valid reply arrived in time.
    pub code: Option<String>,
    /// Reply attributes in order; strings unquoted, octets as `0x...` hex.
    pub attrs: Vec<(String, String)>,
    /// radclient's stdout and stderr, for failure messages.
    pub output: String,
}

impl RadReply {
    /// The first value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of attribute `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Whether nothing at all came back: no reply, not even one that failed verification
    /// (radclient drops that and reports it on stderr, so `code` alone cannot tell).
    pub fn is_silence(&self) -> bool {
        self.code.is_none() && !self.output.contains("Reply verification failed")
    }
}

/// Parses the `Received <Code> Id ...` line and the indented attributes after it.
fn parse_reply(stdout: &str) -> RadReply {
    let mut reply = RadReply::default();
    let mut lines = stdout.lines();
    for line in lines.by_ref() {
        if let Some(rest) = line.strip_prefix("Received ") {
            reply.code = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    for line in lines {
        if !line.starts_with(['\t', ' ']) {
            break;
        }
        if let Some((name, value)) = line.trim().split_once(" = ") {
            reply.attrs.push((name.to_owned(), unquote(value)));
        }
    }
    reply
}

/// A double-quoted string in FreeRADIUS syntax.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a printed attribute: quoted strings unescaped, anything else as printed.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut bytes = Vec::with_capacity(inner.len());
    let mut rest = inner.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        let Some((&e, tail)) = rest.split_first() else {
            bytes.push(b'\\');
            break;
        };
        rest = tail;
        match e {
            b'n' => bytes.push(b'\n'),
            b'r' => bytes.push(b'\r'),
            b't' => bytes.push(b'\t'),
            b'0'..=b'7' => {
                // Octal `\ooo`, as FreeRADIUS prints bytes that are not printable.
                let digits: Vec<u8> = std::iter::once(e)
                    .chain(
                        rest.iter()
                            .copied()
                            .take(2)
                            .take_while(|d| (b'0'..=b'7').contains(d)),
                    )
                    .collect();
                rest = rest.get(digits.len() - 1..).unwrap_or_default();
                let octal = digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0'));
                bytes.push(u8::try_from(octal).unwrap_or(u8::MAX));
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_with_attributes_is_parsed() {
        let out = "Sent Access-Request Id 137 from 0.0.0.0:42335 to 127.0.0.1:18121 length 45\n\
                   \tUser-Name = \"alice\"\n\
                   \tUser-Password = \"wonderland\"\n\
                   Received Access-Accept Id 137 from 127.0.0.1:18121 to 127.0.0.1:42335 length 52\n\
                   \tReply-Message = \"Hello, \\\"alice\\\"\"\n\
                   \tState = 0x0102abcd\n\
                   \tClass = 0x6331\n\
                   \tSession-Timeout = 60\n";
        let reply = parse_reply(out);
        assert_eq!(reply.code.as_deref(), Some("Access-Accept"));
        assert_eq!(reply.get("Reply-Message"), Some("Hello, \"alice\""));
        assert_eq!(reply.get("State"), Some("0x0102abcd"));
        assert_eq!(reply.get("Session-Timeout"), Some("60"));
        assert_eq!(
            reply.get("User-Name"),
            None,
            "sent attributes are not reply attributes"
        );
        assert_eq!(reply.attrs.len(), 4);
    }

    #[test]
    fn missing_reply_has_no_code() {
        let out = "Sent Access-Request Id 73 from 0.0.0.0:45334 to 127.0.0.1:18122 length 45\n\
                   \tUser-Name = \"alice\"\n";
        assert_eq!(parse_reply(out), RadReply::default());
    }

    #[test]
    fn escapes_round_trip() {
        for value in [
            "plain",
            "quo\"te",
            "back\\slash",
            "tab\tnew\nline",
            "ünïcode",
        ] {
            assert_eq!(unquote(&quote(value)), value);
        }
        assert_eq!(unquote(r#""\001x\3770""#), "\u{1}x\u{FFFD}0");
        assert_eq!(unquote("0x00ff"), "0x00ff");
    }
}
