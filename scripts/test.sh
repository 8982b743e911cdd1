#!/usr/bin/env bash
# Run the test tiers: unit, hermetic integration, and the networked end-to-end tests (real
# mmdebstrap, a real Debian mirror, real apt, mke2fs, mtools, dpkg, gpg). Installs host tools first.
# Artifacts are cached under $DRYDOCK_CACHE_DIR (default ~/.cache/drydock), so a warm rerun is fast.
#
# The full-image tier (drydock build of whole bundles, drydock test on them, boot-test in QEMU) is
# opt-in for now with DRYDOCK_E2E_IMAGE=1: it has not yet passed end to end on CI's budget.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-host.sh
export DRYDOCK_CACHE_DIR="${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock}"

skip=()
if [ "${DRYDOCK_E2E_IMAGE:-0}" != 1 ]; then
  for t in bundle_passes corrupted_rpi_arm64_copies boots_in_ wrong_root_fails; do
    skip+=(--skip "$t")
  done
  echo "test.sh: full-image tier skipped (set DRYDOCK_E2E_IMAGE=1 to run it)" >&2
fi

# Unit and hermetic tests first (fast feedback), then the networked end-to-end tier.
cargo test --workspace --release --locked
cargo test --workspace --release --locked -- --ignored --test-threads="${DRYDOCK_TEST_THREADS:-1}" "${skip[@]}"
