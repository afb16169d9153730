#!/usr/bin/env bash
# The project's one test command: installs the system packages the end-to-end tests
# drive (FreeRADIUS, radclient, oathtool, pam_radius_auth, pamtester; OpenLDAP's slapd
# and ldap-utils with the openssl CLI for the directory tests; Debian's aiosmtpd for the
# mail tests; PostgreSQL for the store and multi-node tests), makes sure a PostgreSQL
# server answers on 127.0.0.1:5432, then runs formatting, lints and every test of the
# workspace. Runnable from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

pam_radius_module() {
    dpkg -L libpam-radius-auth 2>/dev/null | grep -m1 '/pam_radius_auth\.so$' || true
}

# Debian puts each major version's server programs (initdb, pg_ctl) under here; the
# fail-over tests start private clusters with them.
postgres_server_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1
}

test_deps_present() {
    local tool module bin
    bin="$(postgres_server_bin)"
    [ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] || return 1
    for tool in radclient freeradius oathtool pamtester slapd slapadd ldapmodify openssl curl psql pg_dump; do
        # freeradius lives in /usr/sbin, which is not on every user's PATH.
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || return 1
    done
    # aiosmtpd is packaged for Debian's interpreter, not for another python3 on PATH.
    /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || return 1
    module="$(pam_radius_module)"
    [ -n "$module" ] && [ -f "$module" ]
}

# The packages start a system FreeRADIUS on 1812 and a system slapd on 389; tests start
# their own on free ports and rely on neither.
stop_packaged_servers() {
    local service
    for service in freeradius slapd; do
        if [ -d /run/systemd/system ]; then
            as_root systemctl stop "$service.service" || true
            as_root systemctl disable "$service.service" || true
        elif [ -x "/etc/init.d/$service" ]; then
            as_root "/etc/init.d/$service" stop || true
        fi
    done
}

step "test dependencies"
if test_deps_present; then
    echo "radclient, freeradius, oathtool, pamtester, pam_radius_auth.so, slapd, ldap-utils, openssl, curl, aiosmtpd and PostgreSQL are installed"
else
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        freeradius freeradius-utils oathtool libpam-radius-auth pamtester \
        slapd ldap-utils openssl curl python3-aiosmtpd postgresql
    stop_packaged_servers
    test_deps_present || { echo "test dependencies still missing after apt-get install" >&2; exit 1; }
fi

# The store conformance suite and the multi-node tests create a fresh database per test on
# the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust authentication for
# local connections) and drop it afterwards. MFAD_TEST_PG points them elsewhere.
postgres_answers() {
    psql -X -q -d "${MFAD_TEST_PG:-postgres://postgres@127.0.0.1:5432}/postgres" -c 'SELECT 1' >/dev/null 2>&1
}

step "PostgreSQL"
if ! postgres_answers && [ -z "${MFAD_TEST_PG:-}" ]; then
    for version in $(ls /etc/postgresql 2>/dev/null); do
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
fi
if postgres_answers; then
    echo "PostgreSQL answers at ${MFAD_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
else
    echo "no PostgreSQL answers at ${MFAD_TEST_PG:-postgres://postgres@127.0.0.1:5432} as user postgres;" \
        "start it, allow 'host all all 127.0.0.1/32 trust' in pg_hba.conf, or set MFAD_TEST_PG" >&2
    exit 1
fi

step "rustfmt and clippy"
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace"
    cargo nextest run --workspace
    # nextest does not run doctests.
    step "cargo test --workspace --doc"
    cargo test --workspace --doc
else
    step "cargo test --workspace"
    cargo test --workspace
fi
