#!/usr/bin/env bash
# Builds the cloud-init test's guest from Debian's packages: a minimal bookworm system made by
# mmdebstrap with Debian's own cloud-init, systemd and the cloud kernel, as a qcow2 root disk
# (an ext4 file system with no partition table, made by mkfs.ext4 -d) plus the kernel and
# initramfs to boot it with. Output: <out>/disk.qcow2, <out>/vmlinuz, <out>/initrd.img, built
# once per <out> (the test passes a cache directory).
set -euo pipefail
out=${1:?usage: build-debian.sh <output dir>}
here=$(cd "$(dirname "$0")" && pwd)
[[ -s $out/disk.qcow2 && -s $out/vmlinuz && -s $out/initrd.img && $out/disk.qcow2 -nt $here/build-debian.sh ]] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "build-debian.sh: mmdebstrap bookworm with cloud-init into $work (a few minutes)" >&2
# cloud-init with its NoCloud source, the cloud kernel (virtio built in or in its initramfs),
# and what a cloud image boots with; no recommends, so it stays small.
mmdebstrap --quiet --variant=minbase --mode=root \
  --include=systemd-sysv,udev,cloud-init,linux-image-cloud-amd64,initramfs-tools,kmod,sudo,procps,ifupdown,isc-dhcp-client,dosfstools \
  --customize-hook='echo "LABEL=root / ext4 defaults 0 1" > "$1/etc/fstab"' \
  --customize-hook='chroot "$1" systemctl enable serial-getty@ttyS0.service >/dev/null 2>&1 || true' \
  --customize-hook='echo "datasource_list: [ NoCloud, None ]" > "$1/etc/cloud/cloud.cfg.d/90-photoncloud.cfg"' \
  bookworm "$work/root" http://deb.debian.org/debian
cp "$work"/root/boot/vmlinuz-* "$work/vmlinuz"
cp "$work"/root/boot/initrd.img-* "$work/initrd.img"
chmod 644 "$work/vmlinuz" "$work/initrd.img"
mkfs.ext4 -q -L root -d "$work/root" "$work/disk.raw" 2G
mkdir -p "$out"
qemu-img convert -O qcow2 "$work/disk.raw" "$out/disk.qcow2.tmp"
mv "$out/disk.qcow2.tmp" "$out/disk.qcow2"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/initrd.img" "$out/initrd.img"
echo "build-debian.sh: $(du -h "$out/disk.qcow2" | cut -f1) qcow2 in $out" >&2
