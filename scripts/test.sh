#!/usr/bin/env bash
# Sets up and runs every test (the README's test command; CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export NODEVICE_SELECT=1
# Incremental artifacts double the target dir and CI builds once: skip them.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
cargo test --workspace --no-fail-fast "$@"
