#!/usr/bin/env bash
# The main job: build the module for the kernel matrix, boot each kernel, run the scenarios;
# then the harness's self-tests, which must each fail in exactly the way they declare (a
# failing step, a kernel WARNING, real slub_debug and KFENCE reports on the console), proving
# that failures are caught.
#
# --production: only the kernels of images/kernels.yaml that come from Debian's binary packages
# (the debug kernel has its own leg, ci/test-debug.sh).
# Other arguments are passed to both runs (e.g. --kernel 6.1 for one CI matrix leg).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup-host.sh
cargo xtask checkpatch
args=()
if [[ ${1:-} == --production ]]; then
    shift
    for k in $(cargo xtask kernels --origin packages); do
        args+=(--kernel "$k")
    done
fi
cargo xtask test "${args[@]}" "$@"
cargo xtask test --scenario scenarios/selftest "${args[@]}" "$@"
