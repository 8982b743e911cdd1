#!/bin/sh
# Benchmark raw-image against genimage and the floor (sparse copies of the same partition files),
# one run, side by side; prints times and ratios. Not run by CI. Needs genimage, e2fsprogs,
# dosfstools, mtools; run as root to drop caches between runs and keep rootfs owners.
#   scripts/bench-raw-image.sh [--size-mb 1024] [--work /var/tmp/drydock-bench-raw-image]
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet -p raw-image --example bench
exec target/release/examples/bench "$@"
