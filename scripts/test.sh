#!/usr/bin/env bash
# Run every test tier: unit, hermetic integration, and the networked end-to-end tests (real
# mmdebstrap, a real Debian mirror, real apt, mke2fs, QEMU). Installs host tools first.
# Artifacts are cached under $DRYDOCK_CACHE_DIR (default ~/.cache/drydock), so a warm rerun is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-host.sh
export DRYDOCK_CACHE_DIR="${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock}"
# Unit and hermetic tests first (fast feedback), then everything including the networked tiers.
cargo test --workspace --release --locked
cargo test --workspace --release --locked -- --ignored --test-threads="${DRYDOCK_TEST_THREADS:-1}"
