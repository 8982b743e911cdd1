#!/usr/bin/env bash
# Install the host tools drydock needs on Debian 12/13 and enable binfmt for foreign-arch chroots.
# Idempotent; run as root (or through sudo). Set DRYDOCK_SETUP_EXTRA="pkg ..." for more packages.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  # building the rootfs and the image
  mmdebstrap debian-archive-keyring arch-test qemu-user-static binfmt-support curl
  e2fsprogs dosfstools mtools fdisk gpg gpgv dpkg-dev zstd xz-utils zip unzip
  # kernel source builds (cross)
  make bc bison flex cpio rsync kmod libssl-dev libelf-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross debhelper
  # boot tests and flashing
  qemu-system-arm qemu-efi-aarch64 openssh-client bmap-tools
  # tests and benchmarks against the tools users would otherwise pick
  apt-utils reprepro genimage python3-venv util-linux
  # cloud-init's schema check of the seed (cloud-init itself is extracted below, not installed)
  python3-yaml python3-jsonschema python3-jinja2 python3-configobj python3-jsonpatch
  python3-requests python3-oauthlib python3-netifaces
)
# shellcheck disable=SC2206
PACKAGES+=(${DRYDOCK_SETUP_EXTRA:-})

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

resolv_backup=$(mktemp)
cp -L /etc/resolv.conf "$resolv_backup" 2>/dev/null || true
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  for try in 1 2 3; do
    if $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
      break
    fi
    [ "$try" = 3 ] && { echo "setup-host: apt-get failed 3 times" >&2; exit 1; }
    sleep $((try * 10))
  done
fi

# resolv.conf guard: some packages replace it with a dead link to systemd-resolved.
if [ ! -e /etc/resolv.conf ] && [ -s "$resolv_backup" ]; then
  echo "setup-host: /etc/resolv.conf was replaced by a dangling link; restoring it" >&2
  $SUDO rm -f /etc/resolv.conf
  $SUDO cp "$resolv_backup" /etc/resolv.conf
fi
rm -f "$resolv_backup"

# binfmt_misc: mount it if needed and enable the qemu-user handlers.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
fi
for h in qemu-aarch64 qemu-arm; do
  $SUDO update-binfmts --enable "$h" >/dev/null 2>&1 || true
done

# A real SPDX validator for the SBOM tests (pyspdxtools from PyPI's spdx-tools), in a venv beside
# the artifact cache (image-assembler looks there, or at $DRYDOCK_VENV, or on PATH).
VENV="${DRYDOCK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock/venv}"
if [ ! -x "$VENV/bin/pyspdxtools" ]; then
  python3 -m venv "$VENV"
  for try in 1 2 3; do
    "$VENV/bin/pip" install -q spdx-tools && break
    [ "$try" = 3 ] && { echo "setup-host: pip install spdx-tools failed 3 times" >&2; exit 1; }
    sleep $((try * 10))
  done
fi
# cloud-init's own schema check for the configure tests, without installing cloud-init on the
# host (the package would enable its services here): the .deb is extracted into a folder and run
# with PYTHONPATH. Tests look at $DRYDOCK_CLOUD_INIT, else this default.
setup_cloud_init_schema() {
  local dir="${DRYDOCK_CLOUD_INIT:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock/cloud-init}"
  [ -f "$dir/usr/lib/python3/dist-packages/cloudinit/__init__.py" ] && return 0
  local tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  for try in 1 2 3; do
    (cd "$tmp" && apt-get download -q cloud-init) && break
    [ "$try" = 3 ] && { echo "setup-host: apt-get download cloud-init failed 3 times" >&2; exit 1; }
    sleep $((try * 10))
  done
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  dpkg-deb -x "$tmp"/cloud-init_*.deb "$dir.tmp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir" && rm -rf "$tmp"
}
setup_cloud_init_schema
echo "setup-host: done" >&2
