#!/usr/bin/env bash
# Builds the rootcellar appliance image from pinned Debian packages, reproducibly: the same
# packages.lock, rootcellar binary, ceremony scripts and files under images/ give a bit-identical
# image. Writes, under OUT (default images/out):
#
#   rootcellar-appliance.img   the boot medium: a GPT disk with one EFI system partition holding
#                              \EFI\BOOT\BOOTX64.EFI, a unified kernel image (kernel + command
#                              line + initramfs), and a readable copy of the manifest
#   vmlinux initrd.img cmdline.txt   the same kernel (uncompressed) and initramfs, for direct boot
#   manifest.txt               the image manifest, also inside the image; its SHA-256 is the
#                              image identity the console shows
#   SHA256SUMS build-info.txt  hashes of the above; host tools and timings of this build
#   baseline/                  the benchmark's baseline: same kernel, bare busybox initramfs
#
# Usage: images/build.sh            build
#        images/build.sh --relock   pin the current Debian 12 versions of packages.list into
#                                   packages.lock (the image hash changes), then build
#        images/build.sh --allow-superseded
#                                   for tests (make test): a pinned version the Debian archive no
#                                   longer has is replaced by its current version in a scratch
#                                   lock (images/build/packages.lock.current), with a warning
#                                   naming each one, instead of failing. Never for a release.
# Environment: OUT, WORK (scratch, default images/build/work), CACHE (downloaded .debs, default
#   images/cache), LOCK (the lock to build from, default images/packages.lock),
#   ROOTCELLAR_BIN (put this binary in the image instead of building one) and
#   ROOTCELLAR_RUSTC (the `rustc --version` it was built with, for the manifest),
#   CARGO_PROFILE (release, the default, or dev).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${OUT:-$here/out}
work=${WORK:-$here/build/work}
cache=${CACHE:-$here/cache}
profile=${CARGO_PROFILE:-release}
lock=${LOCK:-$here/packages.lock}
scratch_lock=$here/build/packages.lock.current
image_name=rootcellar-appliance.img
cmdline="console=tty0 console=ttyS0,115200 quiet"
media_label=RCSNEAKER

# Fixed identities: the disk's GPT id, the EFI system partition's GPT id and FAT volume id.
disk_guid=5243c11a-0000-4000-8000-726f6f74c011
esp_guid=5243c11a-0001-4000-8000-726f6f74c011
esp_volume_id=52434150
esp_label=RCAPPLIANCE

export LC_ALL=C TZ=UTC
umask 022
started=$(date +%s)

say() { printf '%s\n' "$*"; }
step() { printf '\n== %s  [%ss]\n' "$*" "$(($(date +%s) - started))"; }
die() { printf 'image: %s\n' "$*" >&2; exit 1; }
warn() { printf 'image: WARNING: %s\n' "$@" >&2; }

relock_mode=""
allow_superseded=""
for arg in "$@"; do
  case $arg in
    --relock) relock_mode=1 ;;
    --allow-superseded) allow_superseded=1 ;;
    *) die "unknown argument $arg (usage: images/build.sh [--relock | --allow-superseded])" ;;
  esac
done

for tool in apt-get dpkg-deb depmod modprobe readelf objcopy strip cpio mksquashfs mkfs.fat mcopy \
  mmd sfdisk python3 sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing: run images/install-deps.sh"
done

# --- packages -------------------------------------------------------------------------------

# apt-get download NAME=VERSION into the cache, refreshing the package lists once if the
# version is not known yet. Fails (status 1) when the version cannot be had.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt_updated=""
try_download() { # name version
  local name=$1 version=$2
  if (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$name=$version" \
    >/dev/null 2>&1); then
    return 0
  fi
  if [ -z "$apt_updated" ]; then
    apt_updated=1
    $sudo apt-get update -qq || true
    (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$name=$version" >/dev/null 2>&1) &&
      return 0
  fi
  return 1
}
download() { # name version
  try_download "$1" "$2" && return 0
  die "cannot download $1 $2: the Debian archive no longer has that version, or the
  machine has no bookworm sources. Either put the .deb (same SHA-256) in $cache, or run
  images/build.sh --relock to pin the current versions (the image hash changes)."
}

# The current Debian 12 package for a name of packages.list or packages.lock: "NAME VERSION"
# (the kernel's name changes with its ABI: linux-image-amd64 says which one is current).
current_package() { # name
  local name=$1 version
  case $name in
    linux-image-amd64 | linux-image-[0-9]*)
      name=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
      ;;
  esac
  [ -n "$name" ] || return 1
  version=$(apt-cache policy "$name" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [ -n "$version" ] && [ "$version" != "(none)" ] || return 1
  printf '%s %s\n' "$name" "$version"
}

deb_path() { # name version -> the cached .deb, if any
  local file="${1}_${2//:/%3a}_"
  compgen -G "$cache/$file*.deb" | head -n 1 || true
}

relock() {
  step "pinning the current Debian 12 versions of packages.list"
  mkdir -p "$cache"
  local sde=$(($(date +%s) / 86400 * 86400)) name version deb
  $sudo apt-get update -qq
  {
    say "# Generated by images/build.sh --relock from images/packages.list on $(date -u +%F)."
    say "# The exact Debian 12 packages the image is built from: name, version, SHA-256 of the .deb."
    say "# Do not edit by hand; the image records all of it in its manifest."
    say "source-date-epoch $sde"
    while read -r name; do
      current=$(current_package "$name") || die "no candidate version for $name"
      read -r name version <<<"$current"
      download "$name" "$version"
      deb=$(deb_path "$name" "$version")
      say "package $name $version $(sha256sum "$deb" | cut -d' ' -f1)"
    done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/packages.list")
  } > "$lock.new"
  mv "$lock.new" "$lock"
  say "wrote $lock"
}

[ -n "$relock_mode" ] && relock
[ -f "$lock" ] || die "$lock is missing: run images/build.sh --relock"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(awk '$1 == "source-date-epoch" { print $2 }' "$lock")}
export SOURCE_DATE_EPOCH
mapfile -t packages < <(awk '$1 == "package" { print $2 " " $3 " " $4 }' "$lock")

# Every pinned .deb into the cache first, before the long rootcellar build: a version the
# Debian archive has dropped (it keeps only the current one of each package) stops a build
# here, naming it. With --allow-superseded (make test) such a package is replaced by its
# current version in a scratch lock instead, and the build goes on from that lock, loudly.
step "Debian packages: fetching the pinned versions"
mkdir -p "$cache"
superseded=()
for entry in "${packages[@]}"; do
  read -r name version sha <<<"$entry"
  [ -n "$(deb_path "$name" "$version")" ] && continue
  try_download "$name" "$version" && continue
  current=$(current_package "$name" || true)
  if [ -z "$allow_superseded" ]; then
    die "cannot download $name $version, which $lock pins: the Debian archive no longer has
  that version (its current version: ${current:-unknown}), or the machine has no bookworm
  sources. Run images/build.sh --relock to pin the current versions (the image hash changes)
  and commit packages.lock, or put the pinned .deb (same SHA-256) in $cache."
  fi
  [ -n "$current" ] || die "cannot download $name $version, and Debian 12 has no current version of it:
  does the machine have bookworm sources?"
  [ "$current" != "$name $version" ] ||
    die "cannot download $name $version, though it is the current version: no network, or no bookworm sources?"
  superseded+=("$name $version $current")
done
if [ ${#superseded[@]} -gt 0 ]; then
  declare -A replace=()
  for entry in "${superseded[@]}"; do
    read -r name version new_name new_version <<<"$entry"
    download "$new_name" "$new_version"
    deb=$(deb_path "$new_name" "$new_version")
    [ -n "$deb" ] || die "apt-get download gave no .deb for $new_name $new_version"
    replace[$name]="$new_name $new_version $(sha256sum "$deb" | cut -d' ' -f1)"
  done
  mkdir -p "$(dirname "$scratch_lock")"
  {
    say "# Scratch lock written by images/build.sh --allow-superseded on $(date -u +%F): $lock"
    say "# with the versions the Debian archive no longer has replaced by the current ones. For tests"
    say "# only: run images/build.sh --relock and commit packages.lock."
    while IFS= read -r line; do
      read -r kind name _ <<<"$line"
      if [ "$kind" = package ] && [ -n "${replace[$name]:-}" ]; then
        say "package ${replace[$name]}"
      else
        say "$line"
      fi
    done < "$lock"
  } > "$scratch_lock.new"
  mv "$scratch_lock.new" "$scratch_lock"
  superseded_note=()
  for entry in "${superseded[@]}"; do
    read -r name version new_name new_version <<<"$entry"
    superseded_note+=("  $name $version is superseded: built with $new_name $new_version instead")
  done
  superseded_note=("${lock#"$repo"/} is out of date: the Debian archive no longer has" \
    "${superseded_note[@]}" \
    "this build uses the scratch lock ${scratch_lock#"$repo"/}, not for release:" \
    "run images/build.sh --relock and commit images/packages.lock")
  warn "${superseded_note[@]}"
  lock=$scratch_lock
  mapfile -t packages < <(awk '$1 == "package" { print $2 " " $3 " " $4 }' "$lock")
fi
kernel_package=$(printf '%s\n' "${packages[@]}" | awk '$1 ~ /^linux-image-[0-9]/ { print $1 }')
kver=${kernel_package#linux-image-}
[ -n "$kver" ] || die "packages.lock pins no linux-image-<version> package"

step "rootcellar binary"
if [ -n "${ROOTCELLAR_BIN:-}" ]; then
  rootcellar_bin=$ROOTCELLAR_BIN
  rustc_version=${ROOTCELLAR_RUSTC:-"unknown (prebuilt binary given as ROOTCELLAR_BIN)"}
else
  # Its own target directory: a release build here never waits on (or invalidates) the debug
  # builds of `make test` in target/. Paths are remapped so the binary does not depend on where
  # the checkout or the cargo registry is.
  target_dir=$here/build/cargo-target
  (cd "$repo" &&
    CARGO_TARGET_DIR=$target_dir CARGO_PROFILE_RELEASE_STRIP=symbols \
      RUSTFLAGS="--remap-path-prefix=$repo=/rootcellar --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
      cargo build --locked --profile "$profile")
  case $profile in dev) rootcellar_bin=$target_dir/debug/rootcellar ;; *) rootcellar_bin=$target_dir/$profile/rootcellar ;; esac
  rustc_version=$(rustc --version)
fi
[ -x "$rootcellar_bin" ] || die "no rootcellar binary at $rootcellar_bin"
readelf -l "$rootcellar_bin" | grep -q 'Requesting program interpreter' ||
  die "$rootcellar_bin is statically linked: PKCS#11 modules are dlopen'ed, so it must link glibc"

step "Debian packages (pinned in packages.lock)"
mkdir -p "$cache"
rm -rf "$work"
staging=$work/staging
mkdir -p "$staging"
: > "$work/origins.tsv"
for entry in "${packages[@]}"; do
  read -r name version sha <<<"$entry"
  deb=$(deb_path "$name" "$version")
  [ -n "$deb" ] || { download "$name" "$version"; deb=$(deb_path "$name" "$version"); }
  [ -n "$deb" ] || die "apt-get download gave no .deb for $name $version"
  actual=$(sha256sum "$deb" | cut -d' ' -f1)
  [ "$actual" = "$sha" ] || die "$deb has SHA-256 $actual, packages.lock pins $sha"
  dpkg-deb -x "$deb" "$staging"
  dpkg-deb -c "$deb" | awk -v p="$name" '{ sub(/^\./, "", $6); print $6 "\t" p }' >> "$work/origins.tsv"
  say "$name $version"
done

# --- root filesystem ------------------------------------------------------------------------

step "root filesystem"
rootfs=$work/rootfs
mkdir -p "$rootfs"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} "$rootfs"/{dev,proc,sys,run,etc,var,media/sneaker,media/state}
ln -s usr/bin "$rootfs/bin"
ln -s usr/sbin "$rootfs/sbin"
ln -s usr/lib "$rootfs/lib"
ln -s usr/lib64 "$rootfs/lib64"
# Working state is all in the tmpfs on /run (see rootfs/init).
ln -s run/tmp "$rootfs/tmp"
ln -s run/root "$rootfs/root"
ln -s ../run "$rootfs/var/run"
ln -s ../run/tmp "$rootfs/var/tmp"

# Where each file of the image comes from, for the manifest: a Debian package, or "rootcellar"
# (the binary, the scripts under images/rootfs, generated files).
declare -A origin=()
# The real file behind PATH (relative to the staging root), following symlinks inside staging.
staged() {
  local path=$1 target hops=0
  while [ -L "$staging/$path" ]; do
    target=$(readlink "$staging/$path")
    case $target in
      /*) path=${target#/} ;;
      *) path=$(dirname "$path")/$target ;;
    esac
    hops=$((hops + 1))
    [ "$hops" -lt 20 ] || die "symlink loop at $1"
  done
  realpath -sm --relative-to=/ "/$path"
}
# Copy a file from the staging root into the image (symlinks resolved).
take() { # path-in-staging [path-in-image]
  local source dest=${2:-$1} package
  source=$(staged "$1")
  [ -f "$staging/$source" ] || die "$1 is not in any package of packages.lock"
  mkdir -p "$rootfs/$(dirname "$dest")"
  cp "$staging/$source" "$rootfs/$dest"
  package=$(awk -F '\t' -v f="/$1" '$1 == f { print $2; exit }' "$work/origins.tsv")
  origin["/$dest"]=${package:-unknown}
}

# busybox is the whole userland shell; network applets are not linked (there is no network).
take bin/busybox usr/bin/busybox
declare -A no_applet=()
for name in arp arping brctl dnsdomainname dumpleases ftpget ftpput httpd ifconfig ifdown ifup ip \
  ipcalc ipneigh nameif nc netstat nslookup ping ping6 rdate route ssl_client tc telnet telnetd \
  tftp traceroute traceroute6 tunctl udhcpc udhcpd vconfig wget; do
  no_applet[$name]=1
done
"$staging/bin/busybox" --list-full | sort | while read -r applet; do
  name=${applet##*/}
  [ -z "${no_applet[$name]:-}" ] || continue
  case $applet in
    bin/* | usr/bin/*) dest=usr/bin/$name link=busybox ;;
    sbin/* | usr/sbin/*) dest=usr/sbin/$name link=../bin/busybox ;;
    *) continue ;;
  esac
  [ -e "$rootfs/$dest" ] || ln -s "$link" "$rootfs/$dest"
done

take sbin/blkid usr/sbin/blkid

strip --strip-all -o "$rootfs/usr/bin/rootcellar" "$rootcellar_bin"
origin[/usr/bin/rootcellar]=rootcellar

# PKCS#11: SoftHSM2 (rehearsals), OpenSC (smart cards; it dlopens libpcsclite), pcscd and the
# CCID driver, libusb (CCID readers and the YubiHSM2), and the tools operators use with them.
take usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
mkdir -p "$rootfs/usr/lib/softhsm"
ln -s ../x86_64-linux-gnu/softhsm/libsofthsm2.so "$rootfs/usr/lib/softhsm/libsofthsm2.so"
take usr/bin/softhsm2-util
take usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
mkdir -p "$rootfs/usr/lib/x86_64-linux-gnu/pkcs11"
ln -s ../opensc-pkcs11.so "$rootfs/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so"
take etc/opensc/opensc.conf
take usr/bin/pkcs11-tool
take usr/lib/x86_64-linux-gnu/libpcsclite.so.1
take usr/sbin/pcscd
take usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Linux/libccid.so
take usr/lib/pcsc/drivers/ifd-ccid.bundle/Contents/Info.plist
take usr/lib/x86_64-linux-gnu/libusb-1.0.so.0
take usr/bin/openssl
take etc/ssl/openssl.cnf
mkdir -p "$rootfs/usr/lib/ssl"
ln -s /etc/ssl/openssl.cnf "$rootfs/usr/lib/ssl/openssl.cnf"

# The C runtime: the dynamic loader, then every library the ELF files above need (DT_NEEDED),
# taken from the pinned packages.
take lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$rootfs/usr/lib64/ld-linux-x86-64.so.2"
queue=()
while IFS= read -r -d '' file; do
  [ "$(head -c 4 "$file")" = $'\x7fELF' ] && queue+=("${file#"$rootfs"/}")
done < <(find "$rootfs" -type f -print0 | sort -z)
while [ ${#queue[@]} -gt 0 ]; do
  file=${queue[0]}
  queue=("${queue[@]:1}")
  for soname in $(readelf -d "$rootfs/$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
    dest=usr/lib/x86_64-linux-gnu/$soname
    [ -e "$rootfs/$dest" ] && continue
    found=""
    for dir in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
      if [ -e "$staging/$dir/$soname" ] || [ -L "$staging/$dir/$soname" ]; then
        found=$dir/$soname
        break
      fi
    done
    [ -n "$found" ] || die "/$file needs $soname, which no package in packages.lock provides"
    take "$found" "$dest"
    queue+=("$dest")
  done
done

# Licences of every package the image takes files from.
for package in $(printf '%s\n' "${origin[@]}" | sort -u); do
  [ -e "$staging/usr/share/doc/$package/copyright" ] || continue
  take "usr/share/doc/$package/copyright"
done

step "kernel $kver and its modules"
depmod -b "$staging" "$kver"
modules_dir=usr/lib/modules/$kver
mkdir -p "$rootfs/$modules_dir" "$rootfs/usr/lib/rootcellar"
sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/modules.list" > "$work/modules.list"
awk '$2 == "boot" { print $1 }' "$work/modules.list" > "$rootfs/usr/lib/rootcellar/modules.boot"
awk '$2 == "media" { print $1 }' "$work/modules.list" > "$rootfs/usr/lib/rootcellar/modules.media"
origin[/usr/lib/rootcellar/modules.boot]=rootcellar
origin[/usr/lib/rootcellar/modules.media]=rootcellar
awk '{ print $1 }' "$work/modules.list" | while read -r module; do
  modprobe -d "$staging" -S "$kver" --show-depends "$module" ||
    die "module $module is not in $kernel_package"
done | sed -n "s|^insmod $staging/lib/modules/$kver/\([^ ]*\).*|\1|p" | sort -u > "$work/modules.files"
while read -r ko; do
  take "lib/modules/$kver/$ko" "$modules_dir/$ko"
done < "$work/modules.files"
for file in modules.order modules.builtin modules.builtin.modinfo; do
  take "lib/modules/$kver/$file" "$modules_dir/$file"
done
mkdir -p "$work/no-depmod-config"
depmod -C "$work/no-depmod-config" -b "$rootfs/usr" "$kver"
rm -f "$rootfs/$modules_dir"/*.bin
for file in "$rootfs/$modules_dir"/modules.*; do
  [ -n "${origin[/$modules_dir/${file##*/}]:-}" ] || origin[/$modules_dir/${file##*/}]="depmod"
done
say "$(wc -l < "$work/modules.files") modules"

step "the appliance's own files"
cp -R "$here/rootfs/." "$rootfs/"
ln -s ../run/rootcellar/inittab "$rootfs/etc/inittab"
ln -s ../proc/self/mounts "$rootfs/etc/mtab"
ln -s ../usr/lib/os-release "$rootfs/etc/os-release"
mkdir -p "$rootfs/usr/share/rootcellar/ceremony" "$rootfs/usr/share/rootcellar/tuf-repo"
if compgen -G "$repo/ceremony/*" >/dev/null; then
  cp -R "$repo/ceremony/." "$rootfs/usr/share/rootcellar/ceremony/"
fi
cp "$repo/tuf-repo/policy.toml" "$rootfs/usr/share/rootcellar/tuf-repo/policy.toml"
# The console is `rootcellar ceremony console` (rootfs/usr/lib/rootcellar/console); every
# ceremony script it offers must check here, with the paths it names (../tuf-repo/policy.toml,
# config/…) resolved inside the image's tree.
"$rootfs/usr/bin/rootcellar" ceremony console --help >/dev/null ||
  die "the rootcellar binary has no \`ceremony console\`"
for script in "$rootfs"/usr/share/rootcellar/ceremony/*.toml; do
  "$rootfs/usr/bin/rootcellar" ceremony check "$script" >/dev/null ||
    die "ceremony script ${script#"$rootfs"} does not check inside the image"
done
say "ceremony scripts: $(cd "$rootfs/usr/share/rootcellar/ceremony" && echo *.toml)"
# Modes do not depend on the checkout's umask: scripts (#!) 0755, everything else of ours 0644.
(cd "$here/rootfs" && find . -type f -printf '%P\n') | while read -r file; do
  if [ "$(head -c 2 "$here/rootfs/$file")" = '#!' ]; then
    chmod 0755 "$rootfs/$file"
  else
    chmod 0644 "$rootfs/$file"
  fi
done
find "$rootfs/usr/share/rootcellar" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
chmod -R go-w "$rootfs"

step "manifest"
manifest=$work/manifest.txt
rootcellar_version=$("$rootfs/usr/bin/rootcellar" --version 2>/dev/null || echo "rootcellar (version unknown)")
{
  say "# rootcellar appliance image manifest. Its SHA-256 is the image identity the console shows."
  say "format 1"
  say "source-date-epoch $SOURCE_DATE_EPOCH"
  say "kernel $kver"
  say "cmdline $cmdline"
  say "rootcellar $rootcellar_version sha256:$(sha256sum "$rootfs/usr/bin/rootcellar" | cut -d' ' -f1)"
  say "rustc $rustc_version"
  say "console rootcellar ceremony console"
  say "sneakernet-label $media_label"
  say ""
  say "## packages (name, version, SHA-256 of the .deb, as pinned in images/packages.lock)"
  printf 'package %s\n' "${packages[@]}"
  say ""
  say "## files in the root filesystem (SHA-256, mode, path, origin); symlinks as path -> target"
  (cd "$rootfs" && find . -mindepth 1 ! -type d -printf '%P\n' | sort) | while read -r path; do
    if [ -L "$rootfs/$path" ]; then
      say "link /$path -> $(readlink "$rootfs/$path")"
    else
      say "file $(sha256sum "$rootfs/$path" | cut -d' ' -f1) $(stat -c %a "$rootfs/$path") /$path ${origin[/$path]:-rootcellar}"
    fi
  done
} > "$manifest"
cp "$manifest" "$rootfs/usr/share/rootcellar/manifest.txt"
manifest_id=$(sha256sum "$manifest" | cut -d' ' -f1)
say "manifest sha256:$manifest_id"

# --- initramfs, kernel, unified kernel image, disk --------------------------------------------

# A newc archive of DIR with every mtime at SOURCE_DATE_EPOCH, owned by root, in sorted order.
# Not compressed: what is big in it, the root squashfs, is compressed already.
initramfs() { # dir out
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  (cd "$1" && find . -mindepth 1 -printf '%P\n' | sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) > "$2"
}

# An EFI system partition (FAT32, fixed volume id) holding the unified kernel image, then a GPT
# disk (fixed ids) around it.
disk() { # uki out [extra-file-for-the-esp]
  local uki=$1 image=$2 esp=$work/esp.img esp_bytes esp_sectors
  esp_bytes=$(stat -c %s "$uki")
  # FAT32 needs at least 65525 clusters (32 MiB with 512-byte clusters); 4 MiB of slack.
  esp_sectors=$(( ((esp_bytes / 1048576 + 5) > 34 ? (esp_bytes / 1048576 + 5) : 34) * 2048 ))
  rm -f "$esp"
  mkfs.fat --invariant -F 32 -S 512 -s 1 -i "$esp_volume_id" -n "$esp_label" \
    -C "$esp" $((esp_sectors / 2)) >/dev/null
  touch -d "@$SOURCE_DATE_EPOCH" "$uki"
  MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/BOOT
  MTOOLS_SKIP_CHECK=1 mcopy -m -i "$esp" "$uki" ::/EFI/BOOT/BOOTX64.EFI
  if [ -n "${3:-}" ]; then
    touch -d "@$SOURCE_DATE_EPOCH" "$3"
    MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/rootcellar
    MTOOLS_SKIP_CHECK=1 mcopy -m -i "$esp" "$3" "::/rootcellar/$(basename "$3")"
  fi
  rm -f "$image"
  truncate -s $(((2048 + esp_sectors + 2048) * 512)) "$image"
  sfdisk --quiet --no-reread --no-tell-kernel "$image" <<SFDISK
label: gpt
label-id: $disk_guid
unit: sectors
first-lba: 2048
start=2048, size=$esp_sectors, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_guid, name="rootcellar"
SFDISK
  dd if="$esp" of="$image" bs=1M seek=1 conv=notrunc status=none
}

step "root filesystem image (squashfs) and the initramfs around it"
# LZ4 (high compression: same decompression speed), single-threaded, owners fixed, every time
# SOURCE_DATE_EPOCH (mksquashfs reads it from the environment): the same tree gives the same
# bytes. LZ4, not zstd: what the boot reads (the console's binary and libraries, busybox) is
# decompressed 2-3 times faster under emulation (reading rootcellar's 16 MB: 0.12-0.19 s against
# 0.31-0.40 s), 0.2-0.4 s sooner to the console in direct boot; the squashfs grows by 6 MiB,
# which costs the UEFI boot's firmware about 0.3 s to read, less than it gains.
# The first stage (images/stage1/init) mounts it and switches to it; the kernel unpacks only
# this small archive, which is what keeps the boot close to a bare kernel's.
stage1=$work/stage1
mkdir -p "$stage1"/{bin,dev,proc,newroot,modules} "$out"
rm -rf "${out:?}"/*
mksquashfs "$rootfs" "$stage1/root.squashfs" -noappend -comp lz4 -Xhc -all-root -no-xattrs \
  -processors 1 -no-progress >/dev/null
cp "$rootfs/usr/bin/busybox" "$stage1/bin/busybox"
install -m 0755 "$here/stage1/init" "$stage1/init"
for module in loop squashfs; do
  modprobe -d "$staging" -S "$kver" --show-depends "$module" |
    sed -n "s|^insmod \([^ ]*\).*|\1|p" | while read -r ko; do cp "$ko" "$stage1/modules/"; done
done
initramfs "$stage1" "$out/initrd.img"
say "root: $(du -sk "$rootfs" | cut -f1) KiB of files, squashfs $(($(stat -c %s "$stage1/root.squashfs") / 1024)) KiB"
say "initramfs: $(($(stat -c %s "$out/initrd.img") / 1024)) KiB"

step "kernel for direct boot (vmlinux) and the unified kernel image"
vmlinuz=$staging/boot/vmlinuz-$kver
python3 "$here/tools/vmlinux.py" "$vmlinuz" "$out/vmlinux"
printf '%s' "$cmdline" > "$out/cmdline.txt"
stub=$staging/usr/lib/systemd/boot/efi/linuxx64.efi.stub
python3 "$here/tools/uki.py" "$stub" "$rootfs/usr/lib/os-release" "$out/cmdline.txt" "$vmlinuz" \
  "$out/initrd.img" "$work/BOOTX64.EFI"

step "boot disk"
cp "$manifest" "$out/manifest.txt"
disk "$work/BOOTX64.EFI" "$out/$image_name" "$out/manifest.txt"

step "baseline for the boot benchmark (same kernel, bare busybox initramfs)"
baseline=$work/baseline-rootfs
mkdir -p "$baseline"/{bin,dev,proc} "$out/baseline"
cp "$staging/bin/busybox" "$baseline/bin/busybox"
cat > "$baseline/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "rootcellar-baseline: ready"
/bin/busybox poweroff -f
INIT
chmod 0755 "$baseline/init"
initramfs "$baseline" "$out/baseline/initrd.img"
python3 "$here/tools/uki.py" "$stub" "$rootfs/usr/lib/os-release" "$out/cmdline.txt" "$vmlinuz" \
  "$out/baseline/initrd.img" "$work/baseline.efi"
disk "$work/baseline.efi" "$out/baseline/baseline.img"

step "done"
(cd "$out" && sha256sum "$image_name" vmlinux initrd.img manifest.txt cmdline.txt > SHA256SUMS)
elapsed=$(($(date +%s) - started))
{
  say "built $(date -u '+%Y-%m-%dT%H:%M:%SZ') in ${elapsed}s (build time, not an input)"
  say "lock $lock"
  say "lock-sha256 $(sha256sum "$lock" | cut -d' ' -f1)"
  for entry in "${superseded[@]}"; do
    read -r name version new_name new_version <<<"$entry"
    say "superseded $name $version -> $new_name $new_version"
  done
  say "rootcellar-bin $rootcellar_bin"
  say "rustc $rustc_version"
  say "python3 $(python3 --version 2>&1)"
  dpkg-query -W -f '${Package} ${Version}\n' cpio squashfs-tools dosfstools mtools fdisk binutils kmod
} > "$out/build-info.txt"
size=$(stat -c %s "$out/$image_name")
say "image     $out/$image_name"
say "size      $size bytes ($((size / 1048576)) MiB)"
say "manifest  sha256:$manifest_id"
say "build     ${elapsed}s"
say "sha256    $(sha256sum "$out/$image_name" | cut -d' ' -f1)"
[ ${#superseded[@]} -eq 0 ] || warn "${superseded_note[@]}"
