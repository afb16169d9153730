//! OpenLDAP `slapd` as a real directory: a generated `slapd.conf` (mdb backend) and a
//! self-signed CA with a server certificate for StartTLS and ldaps, all in a temp dir,
//! on free ports.
//!
//! Like some production directories, it accepts a DN with an empty password as an
//! unauthenticated bind (RFC 4513 §5.1.2, `allow bind_anon_dn`), so a test of "an empty
//! password is never a bind" proves mfad's own refusal, not slapd's.
//!
//! For Active Directory's `objectCategory=person` shorthand, an `rwm` overlay rewrites
//! that filter term to the category's DN ([`person_category_dn`]), as AD expands it.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{run_with_input, Process};
use crate::require_tool;

pub const BASE_DN: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "admin-secret";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const TOOL_TIMEOUT: Duration = Duration::from_secs(600);
/// Attempts at a free port: another process may take it between the check and slapd's bind.
const PORT_ATTEMPTS: u32 = 5;

/// A running slapd, killed on drop. [`Slapd::stop`] and [`Slapd::restart`] keep the data
/// and the port, to test a directory that goes away and comes back.
pub struct Slapd {
    dir: TempDir,
    port: u16,
    ldaps_port: u16,
    /// Whether slapd has a certificate: StartTLS on [`Slapd::url`] and an ldaps listener.
    tls: bool,
    process: Option<Process>,
}

/// The tree every directory starts with: the base, `ou=people` and `ou=groups`.
pub fn base_ldif() -> String {
    format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n\n"
    )
}

/// An `inetOrgPerson` entry with a clear-text `userPassword` (slapd compares it on bind).
pub fn person_ldif(uid: &str, ou_dn: &str, given: &str, sn: &str, password: &str) -> String {
    format!(
        "dn: uid={uid},{ou_dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {sn}\n\
         givenName: {given}\nsn: {sn}\nmail: {uid}@example.org\ntelephoneNumber: +1555{len:07}\n\
         userPassword: {password}\n\n",
        len = uid.len()
    )
}

/// An organizational unit below `parent_dn`.
pub fn ou_ldif(ou: &str, parent_dn: &str) -> String {
    format!("dn: ou={ou},{parent_dn}\nobjectClass: organizationalUnit\nou: {ou}\n\n")
}

impl Slapd {
    /// Starts slapd with `ldif` loaded (by `slapadd`, before the start, which is fast
    /// enough for 100,000 entries). `ldif` should begin with [`base_ldif`].
    pub fn start(ldif: &str) -> Slapd {
        Self::start_with(ldif, true)
    }

    /// [`Slapd::start`] without a certificate, as a directory that does not offer TLS:
    /// StartTLS is refused and there is no ldaps listener.
    pub fn start_without_tls(ldif: &str) -> Slapd {
        Self::start_with(ldif, false)
    }

    fn start_with(ldif: &str, tls: bool) -> Slapd {
        require_tool("slapd");
        let slapadd = require_tool("slapadd");
        require_tool("ldapmodify");
        let dir = tempfile::Builder::new()
            .prefix("mfad-slapd-")
            .tempdir()
            .expect("create a temp dir for slapd");
        std::fs::create_dir(dir.path().join("db")).expect("create slapd's db dir");
        if tls {
            make_certificates(dir.path());
        }
        std::fs::write(dir.path().join("msuser.schema"), msuser_schema())
            .expect("write the msuser schema");
        std::fs::write(dir.path().join("slapd.conf"), config(dir.path(), tls))
            .expect("write slapd.conf");
        let ldif_path = dir.path().join("seed.ldif");
        std::fs::write(&ldif_path, ldif).expect("write the seed LDIF");
        let mut command = Command::new(slapadd);
        command
            .arg("-q")
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(&ldif_path);
        let (status, out, err) = run_with_input("slapadd", command, b"", TOOL_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "slapadd failed ({status:?})\nstdout:\n{out}\nstderr:\n{err}"
        );
        let _ = std::fs::remove_file(&ldif_path);
        let mut slapd = Slapd {
            dir,
            port: 0,
            ldaps_port: 0,
            tls,
            process: None,
        };
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            slapd.port = crate::free_tcp_port();
            if tls {
                slapd.ldaps_port = crate::free_tcp_port();
            }
            match slapd.launch() {
                Ok(()) => return slapd,
                Err(log) => last_log = log,
            }
        }
        panic!(
            "slapd did not start on 127.0.0.1:{} after {PORT_ATTEMPTS} attempts\nlog:\n{last_log}",
            slapd.port
        )
    }

    fn launch(&mut self) -> Result<(), String> {
        let listeners = if self.tls {
            format!("{}/ {}/", self.url(), self.ldaps_url())
        } else {
            format!("{}/", self.url())
        };
        let mut command = Command::new(require_tool("slapd"));
        command
            // -d keeps slapd in the foreground, as our child; level 0 logs only errors.
            .args(["-d", "0", "-f"])
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(listeners);
        let mut process = Process::spawn("slapd", command);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if process.try_status().is_some() {
                return Err(process.output().text());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && (!self.tls || TcpStream::connect(("127.0.0.1", self.ldaps_port)).is_ok())
            {
                self.process = Some(process);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        process.kill();
        Err(format!(
            "not listening after {START_TIMEOUT:?}\n{}",
            process.output().text()
        ))
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS is offered on it unless started without TLS).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ldaps://127.0.0.1:PORT`: TLS from the first byte.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The PEM CA certificate the server's certificate (for 127.0.0.1) chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A file holding the admin (service account) password.
    pub fn admin_password_file(&self) -> PathBuf {
        let path = self.dir.path().join("admin.password");
        std::fs::write(&path, format!("{ADMIN_PASSWORD}\n")).expect("write the password file");
        path
    }

    /// Runs `ldapmodify -a` (adds, modifies, deletes, renames in LDIF change records)
    /// as the admin.
    pub fn modify(&self, ldif: &str) {
        let mut command = Command::new(require_tool("ldapmodify"));
        command.args([
            "-x",
            "-c",
            "-H",
            &self.url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
            "-a",
        ]);
        let (status, out, err) =
            run_with_input("ldapmodify", command, ldif.as_bytes(), TOOL_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "ldapmodify failed ({status:?})\nLDIF:\n{ldif}\nstdout:\n{out}\nstderr:\n{err}"
        );
    }

    /// Stops slapd (SIGKILL: a directory that vanishes), keeping data and port.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts slapd again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                // The old socket may linger for a moment.
                Err(log) if Instant::now() >= deadline => panic!("slapd did not restart\n{log}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::id)
    }
}

/// Debian's `msuser` schema (Active Directory's user attributes), with the equality
/// matching Active Directory has: Debian's copy defines none for sAMAccountName,
/// userPrincipalName and objectCategory, so a search by any of them finds nothing.
fn msuser_schema() -> String {
    let schema = std::fs::read_to_string("/etc/ldap/schema/msuser.schema")
        .expect("read /etc/ldap/schema/msuser.schema (Debian's slapd package)");
    let mut patched = schema;
    for (name, rule) in [
        ("sAMAccountName", "caseIgnoreMatch"),
        ("userPrincipalName", "caseIgnoreMatch"),
        ("objectCategory", "distinguishedNameMatch"),
    ] {
        let plain = format!("NAME '{name}'\n\tSYNTAX");
        assert!(
            patched.contains(&plain),
            "msuser.schema defines {name} differently"
        );
        patched = patched.replace(
            &plain,
            &format!("NAME '{name}'\n\tEQUALITY {rule}\n\tSYNTAX"),
        );
    }
    patched
}

/// The DN Active Directory puts in `objectCategory` of a user entry, and that it
/// searches for when a filter says `objectCategory=person`.
pub fn person_category_dn() -> String {
    format!("CN=Person,CN=Schema,CN=Configuration,{BASE_DN}")
}

fn config(dir: &Path, tls: bool) -> String {
    let d = dir.display();
    let tls = if tls {
        format!(
            "TLSCACertificateFile {d}/ca.pem\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n"
        )
    } else {
        String::new()
    };
    format!(
        "include /etc/ldap/schema/core.schema\n\
         include /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\n\
         include /etc/ldap/schema/nis.schema\n\
         include {d}/msuser.schema\n\
         pidfile {d}/slapd.pid\n\
         modulepath /usr/lib/ldap\n\
         moduleload back_mdb\n\
         moduleload rwm\n\
         allow bind_anon_dn\n\
         {tls}\
         sizelimit unlimited\n\
         database mdb\n\
         maxsize 4294967296\n\
         suffix \"{BASE_DN}\"\n\
         rootdn \"{ADMIN_DN}\"\n\
         rootpw {ADMIN_PASSWORD}\n\
         directory {d}/db\n\
         limits * size=unlimited time=unlimited\n\
         index objectClass eq\n\
         index uid eq\n\
         index entryUUID eq\n\
         overlay rwm\n\
         rwm-rewriteEngine on\n\
         rwm-rewriteContext searchFilter\n\
         rwm-rewriteRule \"^(.*)[(]objectCategory=person[)](.*)$\" \
         \"%1(objectCategory={category})%2\" \":\"\n",
        category = person_category_dn()
    )
}

/// A CA and a server certificate for 127.0.0.1 / localhost, made with the openssl CLI.
fn make_certificates(dir: &Path) {
    let openssl = require_tool("openssl");
    let run = |args: &[&str]| {
        let mut command = Command::new(&openssl);
        command.current_dir(dir).args(args);
        let (status, out, err) = run_with_input("openssl", command, b"", TOOL_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "openssl {args:?} failed\n{out}\n{err}"
        );
    };
    let mut ext = std::fs::File::create(dir.join("server.ext")).expect("write server.ext");
    ext.write_all(
        b"subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
          keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mfad test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}
