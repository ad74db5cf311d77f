#!/usr/bin/env bash
# Host packages needed to *compile* the harness (ssh2 links OpenSSL). Everything the harness
# runs (qemu, debootstrap, ...) it installs itself when root, or prints the apt command.
set -euo pipefail
need=()
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
dpkg -s debian-archive-keyring >/dev/null 2>&1 || need+=(debian-archive-keyring)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing: ${need[*]}; run: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
