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
    # A user-data script runs once the network is up (as cloud-init runs one).
    if head -n 1 /seed/user-data | grep -q '^#!'; then cp /seed/user-data /user-data.sh; fi
    umount /seed
  fi
done
for disk in /sys/block/vd*; do [ -e "$disk" ] && echo "guest: disk $(basename "$disk") $(cat "$disk/size") sectors"; done
for nic in /sys/class/net/eth*; do [ -e "$nic" ] && echo "guest: nic $(basename "$nic") $(cat "$nic/address")"; done
# Each NIC's address from DHCP (PrismNET's server on the VPC's bridge), then the user-data
# script, in the background: the ready line does not wait for the network.
cat > /bin/dhcp-lease <<'SCRIPT'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
    echo "guest: dhcp $interface $ip/$mask router ${router:-none}" > /dev/ttyS0
    ;;
esac
SCRIPT
chmod +x /bin/dhcp-lease
(
  ip link set lo up
  for nic in /sys/class/net/eth*; do
    [ -e "$nic" ] || continue
    ip link set "$(basename "$nic")" up
    udhcpc -i "$(basename "$nic")" -s /bin/dhcp-lease -q -n -t 30 -T 1 >/dev/null 2>&1 || echo "guest: dhcp $(basename "$nic") failed"
  done
  [ -f /user-data.sh ] && sh /user-data.sh
) &
# A shell on the serial console: what is typed there (the console API's input) runs.
setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1' &
echo "PLASMAVMC-GUEST-READY"
n=0
disks=""
nics=$(ls /sys/class/net | grep '^eth' | tr '\n' ' ')
while true; do
  n=$((n + 1))
  # Disks attached or detached while running are reported as they come and go.
  now=$(ls /sys/block | grep '^vd' | tr '\n' ' ')
  if [ "$now" != "$disks" ]; then disks=$now; echo "guest: disks now ${disks% }"; fi
  # So are NICs; one that came asks DHCP for its address.
  now=$(ls /sys/class/net | grep '^eth' | tr '\n' ' ')
  if [ "$now" != "$nics" ]; then
    for nic in $now; do
      case " $nics " in *" $nic "*) ;; *)
        echo "guest: nic $nic $(cat /sys/class/net/$nic/address) came"
        ip link set "$nic" up
        (udhcpc -i "$nic" -s /bin/dhcp-lease -q -n -t 30 -T 1 >/dev/null 2>&1 || echo "guest: dhcp $nic failed") &
        ;;
      esac
    done
    nics=$now
    echo "guest: nics now ${nics% }"
  fi
  echo "guest: count $n"
  sleep 1
done
