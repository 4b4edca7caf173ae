#!/bin/sh
# Makes a small sparse ext4 disk image with a few files and prints its path (last stdout line),
# standing in for a real image build such as `nix-build -A image`. 1 MiB on purpose: every block is
# uploaded, and the local moto server's 512-byte blocks make each MiB 2048 PutSnapshotBlock calls.
set -eu
out="${TMPDIR:-/tmp}/fleet-appliance.img"
root=$(mktemp -d)
mkdir -p "$root/etc"
echo "appliance built $(date -u +%FT%TZ)" > "$root/etc/motd"
rm -f "$out"
truncate -s 1M "$out"
mkfs.ext4 -q -F -O ^has_journal -d "$root" "$out" >&2
rm -rf "$root"
echo "$out"
