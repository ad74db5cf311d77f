#!/usr/bin/env bash
# The project's own tests: formatting, lints, unit and schema tests. No VM needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-host.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
