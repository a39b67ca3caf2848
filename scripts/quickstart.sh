#!/usr/bin/env bash
# Sets up and runs roster's main job on its sample data: installs OpenLDAP (Debian packages),
# builds roster, starts a private OpenLDAP server in .roster-demo/, writes a starter config and
# sample HR export with `roster init`, shows the plan, applies it, and shows that a second run
# plans nothing. Run from the repository root: scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO=.roster-demo
AS_OF=${AS_OF:-2026-12-01}

scripts/install-test-deps.sh
cargo build --quiet --bin roster --bin roster-testkit
BIN=target/debug

mkdir -p "$DEMO"
eval "$("$BIN/roster-testkit" openldap start --dir "$DEMO/ldap" --tls)"
export ROSTER_LDAP_PASSWORD
if [ ! -f "$DEMO/roster.toml" ]; then
  "$BIN/roster" init "$DEMO" --ldap-url "$ROSTER_LDAP_URL" --base "$ROSTER_LDAP_BASE" \
    --bind-dn "$ROSTER_LDAP_BIND_DN" --ca-file "$ROSTER_LDAP_CA"
fi
ROSTER="$BIN/roster --config $DEMO/roster.toml --as-of $AS_OF"

echo
echo "== roster check"
$ROSTER check
echo
echo "== roster plan (as of $AS_OF)"
$ROSTER plan --out "$DEMO/plan.json"
echo
echo "== roster apply $DEMO/plan.json"
$ROSTER apply "$DEMO/plan.json"
echo
echo "== roster plan again: nothing left to do"
$ROSTER plan
echo
echo "The directory now holds the accounts:"
LDAPTLS_CACERT="$ROSTER_LDAP_CA" ldapsearch -x -LLL -o ldif-wrap=no -H "$ROSTER_LDAP_URL" -D "$ROSTER_LDAP_BIND_DN" \
  -w "$ROSTER_LDAP_PASSWORD" -b "ou=people,$ROSTER_LDAP_BASE" "(uid=*)" dn | grep '^dn:'
echo
echo "Try a later day:  $BIN/roster --config $DEMO/roster.toml --as-of 2026-12-08 plan"
echo "Stop the server:  $BIN/roster-testkit openldap stop --dir $DEMO/ldap"
