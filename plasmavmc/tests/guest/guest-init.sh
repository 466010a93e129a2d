#!/bin/busybox sh
# The test guest's init: what it prints on the serial console is what the tests read.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
while read -r module; do insmod "/lib/modules/$module" 2>/dev/null; done < /lib/modules/order
sleep 0.2
# The disk keeps a line across boots: the previous one is reported, a new one written.
if [ -b /dev/vda ]; then
  previous=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d '\000' | head -n 1)
  echo "guest: disk says [${previous}]"
  boots=$(( $(echo "$previous" | sed -n 's/^boots=\([0-9]*\).*/\1/p' | head -n 1) + 0 + 1 ))
  printf 'boots=%s\n' "$boots" | dd of=/dev/vda bs=512 count=1 conv=notrunc,fsync 2>/dev/null
fi
# The cloud-init seed (NoCloud): the FAT drive labelled cidata (the label read from the FAT16
# boot sector, offset 43; busybox-static has no blkid), its files reported.
for dev in /dev/vd?*; do
  label=$(dd if="$dev" bs=1 skip=43 count=11 2>/dev/null | tr -d ' \000')
  if [ "$label" = "cidata" ] || [ "$label" = "CIDATA" ]; then
    mkdir -p /seed && mount -t vfat -o ro "$dev" /seed
    echo "guest: seed $dev label $label files $(ls /seed | tr '\n' ' ')"
    echo "guest: meta-data $(tr -d '\n ' < /seed/meta-data)"
    echo "guest: user-data first line: $(head -n 1 /seed/user-data)"
    umount /seed
  fi
done
for disk in /sys/block/vd*; do [ -e "$disk" ] && echo "guest: disk $(basename "$disk") $(cat "$disk/size") sectors"; done
for nic in /sys/class/net/eth*; do [ -e "$nic" ] && echo "guest: nic $(basename "$nic") $(cat "$nic/address")"; done
# A shell on the serial console: what is typed there (the console API's input) runs.
setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1' &
echo "PLASMAVMC-GUEST-READY"
n=0
while true; do
  n=$((n + 1))
  echo "guest: count $n"
  sleep 1
done
