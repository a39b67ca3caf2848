#!/usr/bin/env bash
# Runs roster's tests: installs the servers they start for real (OpenLDAP, Samba AD), then the whole
# workspace's test suite with cargo-nextest. This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi
cargo nextest run --workspace --no-fail-fast "$@"
# The store's suite again on PostgreSQL (each test on a private server from the testkit), so both
# backends keep every feature; a PostgreSQL that cannot start fails these tests.
# (Both passes pick their tests by filter over the workspace's build: `-p` would resolve features for
# one package and rebuild dependencies, minutes in CI, for the same tests.)
ROSTER_TEST_STORE=postgres cargo nextest run --workspace -E 'package(roster-store)' --no-fail-fast "$@"
# The daemon and the operators' commands end to end with the store in PostgreSQL (each test's roster
# folder then names a private server by `file:` references; see tests/support/lab.rs).
ROSTER_TEST_STORE=postgres cargo nextest run --workspace \
    -E 'binary_id(roster::serve) | binary_id(roster::operations)' --no-fail-fast "$@"
