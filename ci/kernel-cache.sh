#!/usr/bin/env bash
# Kernels built from source, packed to and from one tar file so CI can keep them between
# runs (GitHub Actions' cache): `save FILE` packs every complete built kernel of the cache
# (<cache>/kernels/src-*), `restore FILE` unpacks them. The harness reuses a restored kernel
# only when its content key (source version, compiler, config fragments) still matches.
set -euo pipefail
cache=${BDSNAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bdsnap}
file=$(realpath -m "${2:-}")
case ${1:-} in
save)
    cd "$cache" 2>/dev/null || { echo "no cache at $cache"; exit 0; }
    dirs=()
    for d in kernels/src-*/; do
        [[ -f $d/.bdsnap-ready ]] && dirs+=("${d%/}")
    done
    if ((${#dirs[@]} == 0)); then
        echo "no built kernel to save"
        exit 0
    fi
    tar -cf "$file" "${dirs[@]}"
    echo "saved ${dirs[*]} ($(du -h "$file" | cut -f1))"
    ;;
restore)
    mkdir -p "$cache"
    tar -C "$cache" -xf "$file"
    echo "restored: $(tar -tf "$file" | cut -d/ -f1-2 | sort -u | tr '\n' ' ')"
    ;;
*)
    echo "usage: $0 save|restore FILE" >&2
    exit 2
    ;;
esac
