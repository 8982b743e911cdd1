#!/bin/sh
# Benchmark deb-repo against apt-ftparchive and reprepro on 1,000+ real arm64/all .debs.
# The .debs are fetched once from deb.debian.org into $CACHE/aux/bench-debs (apt-get download in
# a sandbox); timing and ratios are done by `deb-repo bench` in one run. Not run by CI.
set -eu
CACHE=${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock}
DEBS=$CACHE/aux/bench-debs
COUNT=${BENCH_DEBS:-1100}
SUITE=${BENCH_SUITE:-trixie}
S=$DEBS/.apt
apt_() {
  apt-get -o Dir::State="$S" -o Dir::State::Lists="$S/lists" -o Dir::State::status="$S/status" \
    -o Dir::Cache="$S" -o Dir::Etc::SourceList="$S/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::Etc::Preferences="$S/preferences" -o Dir::Etc::PreferencesParts=/dev/null \
    -o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Acquire::Retries=5 \
    -o APT::Sandbox::User=root -o Acquire::Languages=none "$@"
}
if [ "$(find "$DEBS" -maxdepth 1 -name '*.deb' 2>/dev/null | wc -l)" -lt "$COUNT" ]; then
  mkdir -p "$S/lists/partial" "$S/archives/partial"
  echo "deb http://deb.debian.org/debian $SUITE main" > "$S/sources.list"
  : > "$S/status"
  apt_ update
  # The first $COUNT packages (by name) under 2 MB: a deterministic, varied, sane-sized set.
  apt_ indextargets --format '$(FILENAME)' 'Created-By: Packages' \
    | xargs /usr/lib/apt/apt-helper cat-file \
    | awk '/^Package:/{p=$2} /^Size:/{if ($2 < 2000000) print p}' | sort -u | head -n "$COUNT" > "$S/names"
  # shellcheck disable=SC2046
  (cd "$DEBS" && apt_ download $(cat "$S/names"))
fi
[ "${BENCH_FETCH_ONLY:-}" ] && exit 0
cd "$(dirname "$0")/.."
cargo build --release --quiet -p deb-repo
exec target/release/deb-repo bench "$DEBS" "$@"
