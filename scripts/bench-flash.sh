#!/usr/bin/env bash
# Benchmark: `drydock flash` against `bmaptool copy`, same image, same bmap, same file target, in
# one run. Prints seconds, throughput over the mapped bytes, and the ratio bmaptool/drydock (goal:
# at least 1.0, i.e. drydock no slower). Like for like is the --no-verify row: both check the
# image against the bmap's sha256 while writing and fsync the target. By default drydock also
# reads every written byte back from the target and checks it, which doubles the I/O and which
# bmaptool copy does not do; that row is printed too.
# Not run by CI. Usage: scripts/bench-flash.sh [IMAGE_GiB] [MAPPED_MiB] [RUNS]
# With BENCH_IMAGE=path/to/x.img (e.g. a drydock build), that image is used (bmap made by bmaptool).
set -euo pipefail
cd "$(dirname "$0")/.."
GIB=${1:-2}
MAPPED=${2:-768}
RUNS=${3:-3}

cargo build --release -q -p drydock
DRYDOCK=$PWD/target/release/drydock
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-flash.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if [ -n "${BENCH_IMAGE:-}" ]; then
  cp --sparse=always "$BENCH_IMAGE" "$WORK/x.img"
  bmaptool -q create "$WORK/x.img" -o "$WORK/x.bmap"
  MAPPED=$(( $(sed -n 's:.*<MappedBlocksCount> *\([0-9]*\) *</MappedBlocksCount>.*:\1:p' "$WORK/x.bmap") * 4096 / 1048576 ))
  GIB=$(echo "scale=1; $(stat -c %s "$WORK/x.img") / 1073741824" | bc)
else
  # A sparse image: MAPPED MiB of incompressible data in 8 runs spread over GIB GiB, the rest holes.
  truncate -s "${GIB}G" "$WORK/x.img"
  chunk=$((MAPPED / 8))
  for i in 0 1 2 3 4 5 6 7; do
    dd if=/dev/urandom of="$WORK/x.img" bs=1M count="$chunk" seek=$((i * GIB * 128)) conv=notrunc,sparse status=none
  done
  bmaptool -q create "$WORK/x.img" -o "$WORK/x.bmap"
fi
zstd -q -T0 "$WORK/x.img" -o "$WORK/x.img.zst"
cp "$WORK/x.bmap" "$WORK/x.img.bmap"

drop_caches() { if [ "$(id -u)" -eq 0 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }
# best of RUNS, in seconds
timeit() {
  local best="" t0 t1 s
  for _ in $(seq "$RUNS"); do
    rm -f "$WORK/out.img"; drop_caches
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"$WORK/err" || { echo "failed: $*" >&2; cat "$WORK/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    s=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
  done
  echo "$best"
}

echo "image ${GIB} GiB, ${MAPPED} MiB mapped, best of ${RUNS}, target: a file in $WORK ($(nproc) cores)"
printf '%-34s %9s %11s %9s\n' "case" "seconds" "MiB/s" "ratio"
for src in x.img x.img.zst; do
  b=$(timeit bmaptool -q copy --bmap "$WORK/x.bmap" "$WORK/$src" "$WORK/out.img")
  d=$(timeit "$DRYDOCK" -q flash "$WORK/$src" --device "$WORK/out.img" --yes --bmap "$WORK/x.bmap")
  n=$(timeit "$DRYDOCK" -q flash "$WORK/$src" --device "$WORK/out.img" --yes --bmap "$WORK/x.bmap" --no-verify)
  printf '%-34s %9.2f %11.0f %9s\n' "bmaptool copy $src" "$b" "$(echo "$MAPPED / $b" | bc -l)" "1.00"
  printf '%-34s %9.2f %11.0f %9.2f\n' "drydock flash $src (verified)" "$d" "$(echo "$MAPPED / $d" | bc -l)" "$(echo "$b / $d" | bc -l)"
  printf '%-34s %9.2f %11.0f %9.2f\n' "drydock flash $src --no-verify" "$n" "$(echo "$MAPPED / $n" | bc -l)" "$(echo "$b / $n" | bc -l)"
done
# Same bytes as bmaptool writes.
bmaptool -q copy "$WORK/x.img" "$WORK/ref.img"
"$DRYDOCK" -q flash "$WORK/x.img" --device "$WORK/out.img" --yes >/dev/null
cmp "$WORK/ref.img" "$WORK/out.img" && echo "outputs identical (cmp)"
