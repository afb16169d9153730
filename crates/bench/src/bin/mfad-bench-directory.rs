//! `mfad-bench-directory`: times `mfad directory import` of N users from a local slapd
//! (paged search over StartTLS), then a repeat sync that finds nothing to change.

use anyhow::bail;
use clap::Parser;
use mfad_testkit::{base_ldif, ou_ldif, Mfad, Slapd, ADMIN_DN, BASE_DN};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Directory import benchmark: mfad against a local OpenLDAP slapd")]
struct Args {
    /// Users generated in the directory.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Entries per page of the paged search.
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    /// The mfad binary (default: next to this one).
    #[arg(long)]
    mfad: Option<PathBuf>,
}

fn ldif(users: usize) -> String {
    let people = format!("ou=people,{BASE_DN}");
    let mut out = base_ldif();
    out.push_str(&ou_ldif("staff", &people));
    for i in 0..users {
        let _ = write!(
            out,
            "dn: uid=user{i:07},ou=staff,{people}\nobjectClass: inetOrgPerson\nuid: user{i:07}\n\
             cn: User {i}\ngivenName: User\nsn: Number{i}\nmail: user{i:07}@example.org\n\
             telephoneNumber: +1555{i:07}\n\n"
        );
    }
    out
}

fn timed(node: &Mfad, args: &[&str]) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let output = node.cli(args);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "mfad {} failed: {}{}",
            args.join(" "),
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((took, stdout.trim().to_string()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mfad = match &args.mfad {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("mfad"),
    };
    if !mfad.is_file() {
        bail!(
            "{} not found; build it first with 'cargo build --release -p mfad-server'",
            mfad.display()
        );
    }
    eprintln!("loading {} users into slapd ...", args.users);
    let slapd = Slapd::start(&ldif(args.users));
    let config = format!(
        "[directory]\nservers = [\"{}\"]\npreset = \"openldap\"\nca_file = \"{}\"\n\
         bind_dn = \"{ADMIN_DN}\"\nbind_password_file = \"{}\"\nbase_dn = \"{BASE_DN}\"\n\
         page_size = {}\ntimeout_ms = 60000\n",
        slapd.url(),
        slapd.ca_file().display(),
        slapd.admin_password_file().display(),
        args.page_size
    );
    let node = Mfad::new(&mfad).with_config(&config);
    let (import, import_out) = timed(&node, &["directory", "import"])?;
    if !import_out.contains(&format!("added {},", args.users)) {
        bail!("the import did not add every user: {import_out}");
    }
    let (sync, sync_out) = timed(&node, &["directory", "sync"])?;
    if !sync_out.contains(&format!("unchanged {},", args.users)) {
        bail!("the repeat sync changed something: {sync_out}");
    }
    let listed = node.cli_ok(["user", "list", "--format", "json"]);
    let count = listed.matches("\"username\"").count();
    if count != args.users {
        bail!("the store holds {count} users, expected {}", args.users);
    }
    println!(
        "mfad-bench-directory: {} users, page size {}",
        args.users, args.page_size
    );
    println!(
        "import (added {}):        {:>7.2} s",
        args.users,
        import.as_secs_f64()
    );
    println!("repeat sync (unchanged): {:>7.2} s", sync.as_secs_f64());
    println!("import: {import_out}");
    println!("sync:   {sync_out}");
    drop(slapd);
    Ok(())
}
