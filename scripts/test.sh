#!/usr/bin/env bash
# The project's one test command: installs the system packages the end-to-end tests
# drive (FreeRADIUS, radclient, oathtool, pam_radius_auth, pamtester; OpenLDAP's slapd
# and ldap-utils with the openssl CLI for the directory tests; Debian's aiosmtpd for the
# mail tests), then runs formatting, lints and every test of the workspace. Runnable
# from any directory.
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

test_deps_present() {
    local tool module
    for tool in radclient freeradius oathtool pamtester slapd slapadd ldapmodify openssl; do
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
    echo "radclient, freeradius, oathtool, pamtester, pam_radius_auth.so, slapd, ldap-utils, openssl and aiosmtpd are installed"
else
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        freeradius freeradius-utils oathtool libpam-radius-auth pamtester \
        slapd ldap-utils openssl python3-aiosmtpd
    stop_packaged_servers
    test_deps_present || { echo "test dependencies still missing after apt-get install" >&2; exit 1; }
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
