#!/usr/bin/env bash
# The main job: build the module for the kernel matrix, boot each kernel, run the scenarios.
# Arguments are passed to `cargo xtask test` (e.g. --kernel 6.1 for one CI matrix leg).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-host.sh
cargo xtask test "$@"
