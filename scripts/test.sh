#!/usr/bin/env bash
# Sets up and runs every test (the README's test command; CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export NODEVICE_SELECT=1
cargo test --workspace --no-fail-fast "$@"
