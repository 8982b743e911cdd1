#!/usr/bin/env bash
# Benchmark (not a test, not run by CI): rootfs-builder against a plain mmdebstrap call with the
# same package set, in one run, both cold (no cache, both download from the mirror).
# Prints wall times and their ratio (the cost of hooks, checks and zstd), then the compressed size
# of our .tar.zst against gzip -6 of the same tar.
#   PACKAGES=openssh-server,sudo ARCH=arm64 SUITE=trixie scripts/bench-rootfs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-arm64}
SUITE=${SUITE:-trixie}
PACKAGES=${PACKAGES:-openssh-server}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
cargo build --release --quiet -p rootfs-builder
bin=target/release/rootfs-builder
tmp=$(mktemp -d /var/tmp/bench-rootfs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }

t0=$(now)
"$bin" --arch "$ARCH" --suite "$SUITE" --mirror "$MIRROR" --packages "$PACKAGES" \
  --cache-dir "$tmp/cache" --json > "$tmp/ours.json"
t1=$(now)
ours=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tarball"])' "$tmp/ours.json")

# The same package list mmdebstrap got from rootfs-builder (it adds locales and tzdata).
include=$("$bin" --print-command --arch "$ARCH" --suite "$SUITE" --packages "$PACKAGES" \
  | grep -o -- '--include=[^ ]*')
t2=$(now)
TMPDIR="$tmp" mmdebstrap --quiet --mode=unshare --variant=minbase --architectures="$ARCH" \
  "$include" "$SUITE" "$tmp/plain.tar" "$MIRROR"
t3=$(now)

zstd -d -q -c "$ours" > "$tmp/ours.tar"
t4=$(now)
gzip -6 -c "$tmp/ours.tar" > "$tmp/ours.tar.gz"
t5=$(now)

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$ours" "$tmp" "$include" <<'EOF'
import os, sys
t = [float(x) for x in sys.argv[1:7]]
ours, tmp, include = sys.argv[7], sys.argv[8], sys.argv[9]
rb, mm, gz = t[1] - t[0], t[3] - t[2], t[5] - t[4]
tar = os.path.getsize(f"{tmp}/ours.tar")
zst, gzs = os.path.getsize(ours), os.path.getsize(f"{tmp}/ours.tar.gz")
mib = lambda n: n / 1048576
print(f"package set: minbase {include}")
print(f"rootfs-builder (fetch InRelease, mmdebstrap + hooks, zstd, checks): {rb:7.1f} s")
print(f"plain mmdebstrap (same packages, no hooks, .tar):                   {mm:7.1f} s")
print(f"overhead ratio rootfs-builder / mmdebstrap:                         {rb / mm:7.2f}")
print(f"tar {mib(tar):.1f} MiB; zstd (ours) {mib(zst):.1f} MiB; gzip -6 {mib(gzs):.1f} MiB ({gz:.1f} s)")
print(f"size ratio zstd / gzip -6:                                          {zst / gzs:7.2f}")
EOF
