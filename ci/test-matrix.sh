#!/usr/bin/env bash
# The main job: build the module for the kernel matrix, boot each kernel, run the scenarios;
# then the harness's self-tests, which must each fail in exactly the way they declare (a
# failing step, a kernel WARNING, real slub_debug and KFENCE reports on the console), proving
# that failures are caught.
#
# --production: only the kernels of images/kernels.yaml that come from Debian's binary packages
# (the debug kernel has its own leg, ci/test-debug.sh). While they run, the kernels built from
# source are built in the background at the lowest CPU priority, on whatever CPU the guests
# leave. Measured on 2 cores it saves little: the build ran at about a third of its speed and the
# matrix slowed by several minutes, so the total stays close to the sum of the two.
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
    # Prepare the packaged kernels first: they share their suites' chroots with the source
    # builds, which then only need the chroots' locks for their apt steps.
    cargo xtask build "${args[@]}"
    built=()
    for k in $(cargo xtask kernels --origin source); do
        built+=(--kernel "$k")
    done
    if ((${#built[@]})); then
        mkdir -p results
        nice -n 19 cargo xtask build "${built[@]}" > results/background-build.log 2>&1 &
        background=$!
        trap 'kill "$background" 2>/dev/null || true' EXIT
    fi
fi
cargo xtask test "${args[@]}" "$@"
cargo xtask test --scenario scenarios/selftest "${args[@]}" "$@"
if [[ -n ${background:-} ]]; then
    # The debug leg needs the build; its failure is reported there with the full log.
    wait "$background" || { echo "background kernel build failed: results/background-build.log"; tail -n 30 results/background-build.log; exit 1; }
    trap - EXIT
fi
