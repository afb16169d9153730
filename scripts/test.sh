#!/usr/bin/env bash
# The project's one test command: installs the system packages the end-to-end tests
# drive (FreeRADIUS, radclient, oathtool, pam_radius_auth, pamtester, PostgreSQL), makes
# sure a PostgreSQL server answers on 127.0.0.1:5432, then runs formatting, lints and
# every test of the workspace. Runnable from any directory.
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
    for tool in radclient freeradius oathtool pamtester psql pg_dump; do
        # freeradius lives in /usr/sbin, which is not on every user's PATH.
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || return 1
    done
    module="$(pam_radius_module)"
    [ -n "$module" ] && [ -f "$module" ]
}

# The package starts a system FreeRADIUS on 1812; tests start their own on free ports.
stop_packaged_freeradius() {
    if [ -d /run/systemd/system ]; then
        as_root systemctl stop freeradius.service || true
        as_root systemctl disable freeradius.service || true
    elif [ -x /etc/init.d/freeradius ]; then
        as_root /etc/init.d/freeradius stop || true
    fi
}

step "test dependencies"
if test_deps_present; then
    echo "radclient, freeradius, oathtool, pamtester, pam_radius_auth.so and PostgreSQL are installed"
else
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        freeradius freeradius-utils oathtool libpam-radius-auth pamtester postgresql
    stop_packaged_freeradius
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
