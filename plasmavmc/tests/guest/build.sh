#!/usr/bin/env bash
# Builds the test guest from Debian's packages: the cloud kernel (linux-image-cloud-amd64) and
# an initramfs of busybox-static whose init loads virtio's (and FAT's) modules, reports its
# disks, its cloud-init seed and its network, prints the ready line on the serial console, and
# then counts once a second (the live-migration test watches the count). Output: <out>/vmlinuz and <out>/initrd.img, built
# once per <out> (the tests pass a cache directory).
#
# The guest's init (guest-init.sh) does the work a real image's init would: the tests read what
# it prints.
set -euo pipefail
out=${1:?usage: build.sh <output dir>}
here=$(cd "$(dirname "$0")" && pwd)
[[ -s $out/vmlinuz && -s $out/initrd.img && $out/initrd.img -nt $here/guest-init.sh ]] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
chmod 755 "$work"  # apt-get download drops privileges to _apt when it can
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[[ -n $kernel_pkg ]] || { echo "build.sh: no linux-image-*-cloud-amd64 in apt's lists (apt-get update?)" >&2; exit 1; }
apt-get download -q "$kernel_pkg" busybox-static >/dev/null
for deb in *.deb; do dpkg-deb -x "$deb" root; done
version=$(ls root/lib/modules)
mods=root/lib/modules/$version
mkdir -p initrd/bin initrd/dev initrd/proc initrd/sys initrd/mnt initrd/lib/modules
cp root/bin/busybox initrd/bin/busybox
# Each wanted module after those it depends on (its .modinfo's `depends=`), once: the package
# leaves modules.dep to depmod, which this machine need not have.
declare -A seen=()
order=()
add() {
  local name=$1 file dep
  [[ -n ${seen[$name]:-} ]] && return
  seen[$name]=1
  file=$(find "$mods" -name "$name.ko" | head -n 1)
  [[ -n $file ]] || { echo "build.sh: module $name not in $kernel_pkg" >&2; exit 1; }
  for dep in $(tr '\0' '\n' < "$file" | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '); do add "$dep"; done
  cp "$file" initrd/lib/modules/
  echo "$name.ko" >> initrd/lib/modules/order
}
for name in virtio_pci virtio_blk virtio_net vfat nls_cp437 nls_ascii; do add "$name"; done
cp "$here/guest-init.sh" initrd/init
chmod +x initrd/init
(cd initrd && find . | cpio -o -H newc --quiet | gzip -1) > initrd.img
mkdir -p "$out"
cp root/boot/vmlinuz-* "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv initrd.img "$out/initrd.img"
