#!/usr/bin/env bash
# Installs what roster's tests start for real: OpenLDAP (slapd, its CLI tools), a Samba AD domain
# controller (samba-ad-dc; samba-ad-provision for `samba-tool domain provision`; iproute2 to give
# each DC a loopback address of its own), openssl for the throwaway TLS certificates, and the SQL
# servers the SQL source is tested against: PostgreSQL 15 (initdb, postgres and psql under
# /usr/lib/postgresql/15/bin) and MariaDB (mariadb-install-db, mariadbd and the mariadb client);
# systemd only for `systemd-analyze verify` of the shipped unit files (nothing is started);
# chromium and chromium-driver (Debian's headless browser and its WebDriver server) for the web
# console's end-to-end test. Run
# as root on Debian 12; a second run that finds everything installed does not touch apt, so CI can
# call it on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The SCIM 2.0 server the SCIM target is tested against (and the compliance checker for roster's own
# SCIM endpoint) come from PyPI, pinned, into a virtual environment of the repository's own
# (.venv-test/, git-ignored), where crates/testkit looks for them. Needs only python3 with venv.
python_test_tools() {
    local venv=.venv-test
    local wanted=(scim2-server==0.8.3 scim2-tester==0.5.2)
    local installed
    installed=$("$venv/bin/pip" freeze 2>/dev/null || true)
    local absent=0
    for requirement in "${wanted[@]}"; do
        grep -qix "$requirement" <<<"$installed" || absent=1
    done
    if [ "$absent" -eq 0 ]; then
        echo "install-test-deps: already in $venv: ${wanted[*]}"
        return
    fi
    echo "install-test-deps: installing ${wanted[*]} into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${wanted[@]}"
}
python_test_tools

packages=(slapd ldap-utils openssl samba-ad-dc samba-ad-provision iproute2
          postgresql mariadb-server-core mariadb-client-core systemd chromium chromium-driver)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query --show --showformat='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-deps: already installed: ${packages[*]}"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: missing ${missing[*]}; run this script as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Without this the slapd package would build and start a system-wide instance of its own;
# the tests start private instances in temporary folders instead.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections

# Nor should the Samba packages start their system daemons (smbd, nmbd, winbind): policy-rc.d
# answering 101 keeps invoke-rc.d and deb-systemd-invoke from starting services. Container images
# often have one already; otherwise one is in place for this install only.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

# The tests initdb private clusters of their own; the system-wide one the postgresql package would
# create is not wanted.
mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
    echo "create_main_cluster = false" >>/etc/postgresql-common/createcluster.conf
fi

echo "install-test-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
