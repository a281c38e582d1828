#!/usr/bin/env bash
# Installs what `make image`, `make image-test` and `make image-bench` need and the machine
# lacks: the Debian tools that assemble the image (cpio, squashfs-tools, dosfstools, mtools, fdisk's sfdisk,
# binutils' objcopy, kmod's depmod and modprobe) and those that boot and check it (QEMU, OVMF,
# openssl, e2fsprogs for the test's ext4 state disk). The image's own contents are not installed: build.sh downloads the pinned .debs.
# Idempotent: a machine that has everything is left alone. Needs Debian 12 (bookworm).
set -euo pipefail

need_apt=()
need() { # command package
  command -v "$1" >/dev/null 2>&1 || need_apt+=("$2")
}
need cpio cpio
need mksquashfs squashfs-tools
need mkfs.fat dosfstools
need mcopy mtools
need sfdisk fdisk
need objcopy binutils
need depmod kmod
need python3 python3
need qemu-system-x86_64 qemu-system-x86
need openssl openssl
need mkfs.ext4 e2fsprogs
need debugfs e2fsprogs
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need_apt+=(ovmf)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi
