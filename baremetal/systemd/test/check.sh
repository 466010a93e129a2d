#!/bin/bash
# Runs inside the test VM as photontest.service (scripts/test-systemd): checks the units under a
# real systemd, prints one "PHOTONTEST ok|FAIL <what>" line per check on the serial console, and
# powers the VM off. Phase 1 is the first boot; phase 2 the boot after it, from the same disk.
set -u
CA=/etc/photoncloud/tls/ca.crt
PASS=0
FAIL=0
# Each line goes to the console (to watch) and to a file on the disk, which the host reads back
# after the VM is off: the console can interleave kernel messages into a line.
RESULTS=/var/lib/photontest/results
mkdir -p "$(dirname "$RESULTS")"
say() { echo "PHOTONTEST $*" | tee -a "$RESULTS"; }
check() {
  local what=$1
  shift
  if "$@"; then say "ok $what"; PASS=$((PASS + 1)); else say "FAIL $what"; FAIL=$((FAIL + 1)); return 1; fi
}
healthy() { curl -sf -m 10 --cacert "$CA" "https://127.0.0.1:$1/health" >/dev/null; }
all_healthy() { healthy 2379 && healthy 2479 && healthy 8080 && healthy 9093 && healthy 853 && healthy 9092 && healthy 9091 && healthy 9090; }
# FlashDNS on port 53: `health.local. A` (a query written byte by byte; the VM has no dig)
# must come back with 127.0.0.1 in it.
dns_answers() {
  timeout 3 bash -c 'exec 3<>/dev/udp/127.0.0.1/53
    printf "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06health\x05local\x00\x00\x01\x00\x01" >&3
    dd bs=512 count=1 <&3 2>/dev/null | od -An -tx1' | tr -d ' \n' | grep -q '7f000001$'
}
# wait_until SECS COMMAND...: polls twice a second until the command succeeds or SECS pass.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}
# What every service's /health says (for a failed check).
health_report() {
  for port in 2379 2479 8080 9093 853 9092 9091; do
    say "health $port: $(curl -s -m 5 --cacert "$CA" "https://127.0.0.1:$port/health" 2>&1 | head -c 300)"
  done
  systemctl --failed --no-legend --plain | sed 's/^/PHOTONTEST failed unit: /'
}
prop() { systemctl show -p "$2" --value "$1"; }
restarted() { [ "$(prop "$1" NRestarts)" -gt "$2" ]; }
etcdctl_() { ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert "$CA" --command-timeout=10s "$@"; }
inactive() { ! systemctl is-active --quiet "$1"; }
# A service's REST API in the default project as the administrator: api PORT METHOD PATH [BODY]
# prints the answer; net (PrismNET) and vmc (PlasmaVMC) only succeed or fail.
api() {
  local token
  token=$(curl -sf --cacert "$CA" -H 'content-type: application/json' \
    --data-binary "{\"user\":\"admin\",\"password\":\"$(cat /var/lib/photoncloud/initial-admin-password)\"}" \
    https://127.0.0.1:8080/api/v1/auth/token | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  curl -sf --cacert "$CA" -X "$2" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    ${4:+--data-binary "$4"} "https://127.0.0.1:$1/api/v1/orgs/default/projects/default$3"
}
net() { api 9091 "$@" >/dev/null; }
vmc() { api 9090 "$@" >/dev/null; }
# A VM whose image is this machine's own kernel (served by busybox's httpd): QEMU started by
# the unit's agent, as a uid of its own. The guest need not finish booting.
create_vm() {
  local kernel
  kernel=$(basename "$(ls /boot/vmlinuz-* | head -n 1)")
  (cd /boot && busybox httpd -p 127.0.0.1:8099 -h /boot) &&
    vmc POST /flavors '{"name":"tiny","spec":{"vcpus":1,"memory_mib":128,"disk_gib":1}}' &&
    vmc POST /images "{\"name\":\"boot\",\"spec\":{\"kernel\":{\"url\":\"http://127.0.0.1:8099/$kernel\"}}}" &&
    vmc POST /vms '{"name":"v1","spec":{"flavor":"tiny","image":"boot"}}'
}
vm_running() { api 9090 GET /vms/v1 | grep -q '"state":"running"'; }
qemu_pid() { pgrep -f 'guest=default.default.v1' | head -n 1; }
# QEMU's real, effective, saved and file uids are one, above agent.qemu_uid_base, and that uid
# owns a VM's run directory.
qemu_not_root() {
  local pid uid
  pid=$(qemu_pid)
  [ -n "$pid" ] || return 1
  uid=$(awk '/^Uid:/{print ($2 == $3 && $3 == $4 && $4 == $5) ? $2 : -1}' "/proc/$pid/status")
  [ "$uid" -gt 1500000 ] && stat -c %u /var/lib/plasmavmc/vms/*/ | grep -qx "$uid"
}
no_qemu() { [ -z "$(qemu_pid)" ]; }
create_network() {
  net POST /vpcs '{"name":"vmtest","spec":{"cidr":"10.50.0.0/16"}}' &&
    net POST /vpcs/vmtest/subnets '{"name":"s","spec":{"cidr":"10.50.1.0/24"}}' &&
    net POST /vpcs/vmtest/subnets/s/ports \
      '{"name":"m","spec":{"port_security":false,"binding":{"node":"node01","netns":"photontest-m","configure":true}}}'
}
# A VPC's namespace, entered from the host: pinned by a mount the host sees, with its bridge.
vpc_namespace() {
  local ns
  ns=$(ip netns list | grep -o '^prismnet-[0-9]*' | head -n 1)
  [ -n "$ns" ] && ip netns exec "$ns" ip link show br0 >/dev/null 2>&1
}
vpc_still_there() { vpc_namespace && machine_addressed; }
no_vpc_namespace() { ! ip netns list | grep -q '^prismnet-'; }
# The machine's end of a port, addressed by prismnet (the VM has no ping).
machine_addressed() { ip -n photontest-m -o addr show dev eth0 2>/dev/null | grep -q ' 10\.50\.1\.'; }
# FlashDNS on port 53 answers NAME with IPv4 address IP (the VM has no dig).
name_answers() {
  local q="" label hex
  for label in ${1//./ }; do q+="$(printf '\\x%02x' ${#label})$label"; done
  hex=$(printf '%02x' ${2//./ })
  timeout 3 bash -c "exec 3<>/dev/udp/127.0.0.1/53
    printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00${q}\x00\x00\x01\x00\x01' >&3
    dd bs=512 count=1 <&3 2>/dev/null | od -An -tx1" | tr -d ' \n' | grep -q "$hex\$"
}
# The machine's port is named in FlashDNS: m.s.vmtest.default.default.photon.internal.
machine_named() {
  local ip
  ip=$(ip -n photontest-m -o -4 addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
  [ -n "$ip" ] && name_answers m.s.vmtest.default.default.photon.internal "$ip"
}
finish() {
  say "DONE phase $PHASE: $PASS passed, $FAIL failed"
  journalctl -b --no-pager -o short-monotonic -u 'chainfire*' -u 'flaredb*' -u 'iam*' -u lightningstor -u flashdns -u fiberlb -u prismnet -u plasmavmc -u cluster-health-check \
    | tail -n 80 | sed 's/^/PHOTONLOG /'
  sync
  systemctl poweroff --no-block
  exit 0
}
PHASE=$(sed -n 's/.*photontest.phase=\([0-9]\).*/\1/p' /proc/cmdline)
say "phase $PHASE starting"

if [ "$PHASE" = 1 ]; then
  check "first boot finished (cluster-health-check)" wait_until 600 systemctl is-active --quiet cluster-health-check.service
  check "photoncloud.target active" systemctl is-active --quiet photoncloud.target
  check "every service healthy" wait_until 120 all_healthy || health_report
  for step in chainfire-join flaredb-join iam-setup health-check; do
    check "first-boot marker $step" test -f "/var/lib/photoncloud/firstboot/$step.done"
  done
  check "administrator password kept 0600" test "$(stat -c %a /var/lib/photoncloud/initial-admin-password)" = 600
  started=$(journalctl -b -o cat _PID=1 | grep -oE '^Started (chainfire|flaredb|iam|lightningstor)\.service' | awk '{print $2}' | tr '\n' ' ')
  check "start order in the journal: chainfire flaredb iam lightningstor (saw: $started)" \
    test "$started" = "chainfire.service flaredb.service iam.service lightningstor.service "
  order=$(journalctl -b -o cat _PID=1 | grep -oE '^Started (iam|flashdns)\.service' | awk '{print $2}' | tr '\n' ' ')
  check "flashdns started after iam (saw: $order)" test "$order" = "iam.service flashdns.service "
  check "flashdns answers DNS on port 53 (CAP_NET_BIND_SERVICE only)" wait_until 30 dns_answers
  order=$(journalctl -b -o cat _PID=1 | grep -oE '^Started (iam|fiberlb)\.service' | awk '{print $2}' | tr '\n' ' ')
  check "fiberlb started after iam (saw: $order)" test "$order" = "iam.service fiberlb.service "
  check "fiberlb healthy, following chainfire" bash -c "curl -sf --cacert $CA https://127.0.0.1:9092/health | grep -q '\"chainfire\":\"connected\"'"
  order=$(journalctl -b -o cat _PID=1 | grep -oE '^Started (iam|prismnet)\.service' | awk '{print $2}' | tr '\n' ' ')
  check "prismnet started after iam (saw: $order)" test "$order" = "iam.service prismnet.service "
  check "prismnet healthy, following chainfire, its dataplane on" wait_until 60 bash -c "curl -sf --cacert $CA https://127.0.0.1:9091/health | grep -q '\"dataplane\":\"converged\"'"
  # A VPC on this node: its namespace pinned on the host (the unit's mounts are shared), the
  # machine's end addressed; a restart of prismnet leaves both.
  ip netns add photontest-m
  check "prismnet: a VPC, a subnet and a port created" create_network
  check "prismnet: the port plugged in and addressed" wait_until 30 machine_addressed
  check "prismnet: the VPC's namespace is seen on the host" vpc_namespace
  check "prismnet: the port is named in FlashDNS (as prismnet's service account)" wait_until 30 machine_named
  check "prismnet: the VPC converged (DHCP server and all)" wait_until 30 bash -c "curl -sf --cacert $CA https://127.0.0.1:9091/health | grep -q '\"dataplane\":\"converged\"'"
  systemctl restart prismnet.service
  check "prismnet restarted: the namespace and the machine's end are still there" vpc_still_there
  # Gone with the VPC (the machine's namespace would not outlive the reboot below either).
  check "prismnet: the VPC deleted" net DELETE /vpcs/vmtest
  check "prismnet: its namespace removed from the host" wait_until 30 no_vpc_namespace
  order=$(journalctl -b -o cat _PID=1 | grep -oE '^Started (iam|plasmavmc)\.service' | awk '{print $2}' | tr '\n' ' ')
  check "plasmavmc started after iam (saw: $order)" test "$order" = "iam.service plasmavmc.service "
  check "plasmavmc healthy, this node registered as a hypervisor" wait_until 60 bash -c "curl -sf --cacert $CA https://127.0.0.1:9090/health | grep -q '\"schedulable\":1'"
  check "plasmavmc: a flavour, an image and a VM created" create_vm
  if ! check "plasmavmc: the VM's QEMU runs" wait_until 180 vm_running; then
    say "vm: $(api 9090 GET /vms/v1 | sed 's/.*"status"://' | head -c 1500)"
    say "image: $(api 9090 GET /images/boot | sed 's/.*"status"://' | head -c 600)"
    say "qemu.log: $(cat /var/lib/plasmavmc/vms/*/qemu.log 2>&1 | tr '\n' ' ' | head -c 600)"
    journalctl -b -u plasmavmc -o cat --no-pager | grep -v '"level":"DEBUG"' | tail -n 15 | cut -c1-400 | sed 's/^/PHOTONTEST plasmavmc log: /' | tee -a "$RESULTS"
  fi
  check "plasmavmc: QEMU runs as a uid of its own, which owns its run directory" qemu_not_root
  check "plasmavmc: QEMU's seccomp sandbox is on" bash -c "curl -sf --cacert $CA https://127.0.0.1:9090/health | grep -q '\"sandbox\":\"on'"
  check "plasmavmc: the VM deleted" vmc DELETE /vms/v1
  check "plasmavmc: its QEMU ended" wait_until 60 no_qemu
  check "services log JSON to the journal" bash -c "journalctl -b -u chainfire -o cat | grep -q '^{.*\"level\"'"
  check "data written before the reboot" etcdctl_ put photontest/kept yes
  # Requires: stopping chainfire takes down flaredb and IAM (which require it), not LightningStor.
  systemctl stop chainfire.service
  check "stop chainfire: chainfire stopped" inactive chainfire.service
  check "stop chainfire: flaredb stopped (Requires)" inactive flaredb.service
  check "stop chainfire: iam stopped (Requires flaredb)" inactive iam.service
  check "stop chainfire: lightningstor still running (Wants)" systemctl is-active --quiet lightningstor.service
  check "stop chainfire: flashdns still running and answering (Wants)" dns_answers
  check "stop chainfire: fiberlb still running (Wants)" systemctl is-active --quiet fiberlb.service
  check "stop chainfire: prismnet still running (Wants)" systemctl is-active --quiet prismnet.service
  systemctl start photoncloud.target
  check "start photoncloud.target: every service healthy again" wait_until 180 all_healthy || health_report
  # kill -9 of a main pid: systemd restarts it.
  before=$(prop flaredb.service NRestarts)
  kill -9 "$(prop flaredb.service MainPID)"
  check "kill -9 flaredb: restarted by systemd" wait_until 120 restarted flaredb.service "$before"
  check "kill -9 flaredb: healthy again" wait_until 120 healthy 2479
  # The watchdog: a frozen service stops pinging and is killed and restarted.
  before=$(prop chainfire.service NRestarts)
  kill -STOP "$(prop chainfire.service MainPID)"
  check "frozen chainfire: restarted by the watchdog" wait_until 180 restarted chainfire.service "$before"
  check "frozen chainfire: the journal says watchdog" bash -c "journalctl -b -u chainfire -o cat | grep -qi watchdog"
  check "frozen chainfire: every service healthy again" wait_until 180 all_healthy
  finish
fi

if [ "$PHASE" = 2 ]; then
  check "reboot: photoncloud.target active" wait_until 600 systemctl is-active --quiet photoncloud.target
  check "reboot: every service healthy" wait_until 300 all_healthy || health_report
  for unit in chainfire-cluster-join flaredb-cluster-join iam-initial-setup cluster-health-check; do
    check "reboot: $unit repeated nothing (condition not met)" test "$(prop "$unit.service" ConditionResult)" = no
  done
  check "reboot: data kept" bash -c "[ \"\$(ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert $CA get photontest/kept --print-value-only)\" = yes ]"
  check "reboot: the administrator password still logs in" bash -c "curl -sf --cacert $CA -H 'content-type: application/json' \
    --data-binary \"{\\\"user\\\":\\\"admin\\\",\\\"password\\\":\\\"\$(cat /var/lib/photoncloud/initial-admin-password)\\\"}\" \
    https://127.0.0.1:8080/api/v1/auth/token | grep -q access_token"
  finish
fi
say "FAIL unknown phase '$PHASE'"
FAIL=1
finish
