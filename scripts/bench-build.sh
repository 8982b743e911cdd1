#!/usr/bin/env bash
# Benchmarks of `drydock build` (not CI; run as root on a warm cache, one full build first if not):
#  (1) assembly alone (the image stage, every artifact cached) against the floor: copying the
#      image's used bytes into place plus zstd at the same level (3) and threads (all cores);
#      measured as every image after a system's first (its root file system and that
#      partition's zstd frame kept and copied into place), and once as a system's first image
#      (the kept root removed: mke2fs makes it, the frame is compressed, both are kept);
#  (2) a rebuild after changing only the hostname (end to end, bundle exported);
#  (3) a rebuild with nothing changed;
#  (4) the default image's raw, allocated and compressed sizes.
# Usage: [RUNS=3] scripts/bench-build.sh [BOARD]
set -euo pipefail
cd "$(dirname "$0")/.."
BOARD=${1:-rpi-arm64}
cargo build --release --quiet --bin drydock
DD=${CARGO_TARGET_DIR:-target}/release/drydock
W=$(mktemp -d /var/tmp/drydock-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

echo "warming the cache for $BOARD (a full build the first time)" >&2
$DD -q build "$BOARD" --out "$W/out" --json > "$W/warm.json"

# (3) nothing changed.
$DD -q build "$BOARD" --out "$W/out" --json > "$W/noop.json"
noop=$(json "$W/noop.json" "round(d['seconds'], 2)")

CACHE=${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock}

# (1) + (2): hostnames never used, so only the image stage runs. RUNS times each (default 3),
# medians; `sync` first each time, so one run's writeback does not land in the next one's time.
RUNS=${RUNS:-3}
median() { python3 -c "import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:]), 2))" "$@"; }
rebuilds=(); assemblies=(); floors=()
for i in $(seq "$RUNS"); do
  host="bench-$(date +%s)-$i"
  rm -rf "$W/host"
  sync
  $DD -q build "$BOARD" --hostname "$host" --out "$W/host" --json > "$W/host.json"
  rebuilds+=("$(json "$W/host.json" "d['seconds']")")
  assemblies+=("$(json "$W/host.json" "[s for s in d['steps'] if s['step']=='image'][0]['seconds']")")
  stages=$(json "$W/host.json" "', '.join(f'{n} {t:.1f} s' for n, t in d['timings'])")
  # The floor on the same image: copy the used bytes into place, compress at the same settings.
  IMG=$(ls "$W"/host/*.img)
  rm -f "$W/floor.img" "$W/floor.img.zst"
  sync
  t0=$(date +%s.%N)
  cp --sparse=always "$IMG" "$W/floor.img"
  zstd -q -3 -T0 -f "$IMG" -o "$W/floor.img.zst"
  floors+=("$(python3 -c "import time; print(time.time() - $t0)")")
done
# (1), a system's first image: the kept root file system (and its frame) removed first.
rm -rf "$CACHE"/aux/system-trees/"$BOARD"/*/kept
rm -rf "$W/host"
sync
$DD -q build "$BOARD" --hostname "bench-$(date +%s)-first" --out "$W/host" --json > "$W/first.json"
first=$(json "$W/first.json" "round([s for s in d['steps'] if s['step']=='image'][0]['seconds'], 2)")
first_stages=$(json "$W/first.json" "', '.join(f'{n} {t:.1f} s' for n, t in d['timings'])")

rebuild=$(median "${rebuilds[@]}")
assembly=$(median "${assemblies[@]}")
floor=$(median "${floors[@]}")
ratio=$(python3 -c "print(round($assembly / $floor, 2))")
first_ratio=$(python3 -c "print(round($first / $floor, 2))")
each=$(python3 -c "import sys; a=sys.argv[1].split(); f=sys.argv[2].split(); print(', '.join(f'{float(x):.1f}/{float(y):.1f}' for x, y in zip(a, f)))" "${assemblies[*]}" "${floors[*]}")

# (4) sizes of the default image.
DIMG=$(ls "$W"/out/*.img)
raw=$(stat -c %s "$DIMG")
alloc=$(( $(stat -c %b "$DIMG") * $(stat -c %B "$DIMG") ))
zst=$(stat -c %s "$DIMG.zst")
mib() { python3 -c "print(f'{$1 / 1048576:.0f} MiB')"; }

cat <<EOF
drydock build $BOARD on $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg):
 (1) assembly alone (image stage):  $assembly s   floor (cp --sparse + zstd -3 -T0): $floor s   ratio $ratio (goal <= 1.5)
     medians of $RUNS; each run assembly/floor s: $each
     stages of the last run: $stages
     a system's first image (root file system made, then kept): $first s, ratio $first_ratio
     stages: $first_stages
 (2) rebuild after a hostname change: $rebuild s (goal < 60 s)
 (3) rebuild with nothing changed:    $noop s (goal < 2 s)
 (4) default image: raw $(mib "$raw"), allocated $(mib "$alloc"), .img.zst $(mib "$zst")
EOF
