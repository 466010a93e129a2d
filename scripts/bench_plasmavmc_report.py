"""The PlasmaVMC section of docs/benchmarks.md from scripts/bench-plasmavmc's results.
Usage: bench_plasmavmc_report.py RESULTS.jsonl CORES"""
import json
import sys

rows = {}
for line in open(sys.argv[1]):
    doc = json.loads(line)
    rows[doc["measure"]] = doc
cores = sys.argv[2]


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


raw_qmp, raw_ready = rows["raw_qmp_ms"]["values"], rows["raw_ready_ms"]["values"]
vm_qmp, vm_ready = rows["vm_qmp_ms"]["values"], rows["vm_ready_ms"]["values"]
over_qmp = [pct(vm_qmp, p) - pct(raw_qmp, p) for p in (50, 99)]
over_ready = [pct(vm_ready, p) - pct(raw_ready, p) for p in (50, 99)]
concurrent = rows["concurrent_running_ms"]
print("## PlasmaVMC and raw QEMU (VM start)\n")
print(f"Produced by `scripts/bench-plasmavmc` in one run on one machine ({cores} cores): the test guest (Debian's")
print("cloud kernel and a busybox initramfs) booted by raw `qemu-system-x86_64` with the command line the agent")
print("builds, and through PlasmaVMC (REST create as a tenant → scheduler → agent → QEMU; debug build, dependencies")
print("optimised; chainfire, flaredb and IAM beside it), alternating, " + f"{len(raw_ready)} runs each. Software")
print("emulation (TCG): KVM on this machine does not run guests. \"QMP\" is until QEMU answers on its QMP socket")
print("(raw: from the spawn; PlasmaVMC: from the create request), the part the control plane can add to; \"ready\"")
print("is until the guest's ready line is on its serial console.\n")
print("| measure | raw QEMU p50 | raw p99 | PlasmaVMC p50 | PlasmaVMC p99 | overhead p50 | overhead p99 | goal |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
met = "met" if over_qmp[0] <= 100 else "not met"
print(f"| to QMP answering | {pct(raw_qmp, 50):.0f} ms | {pct(raw_qmp, 99):.0f} ms | {pct(vm_qmp, 50):.0f} ms | {pct(vm_qmp, 99):.0f} ms | {over_qmp[0]:.0f} ms | {over_qmp[1]:.0f} ms | p50 <= 100 ms ({met}) |")
print(f"| to the ready line | {pct(raw_ready, 50):.0f} ms | {pct(raw_ready, 99):.0f} ms | {pct(vm_ready, 50):.0f} ms | {pct(vm_ready, 99):.0f} ms | {over_ready[0]:.0f} ms | {over_ready[1]:.0f} ms | |")
print()
raw_concurrent = rows["raw_concurrent_ms"]["value"]
print(f"{concurrent['count']} at once, to every QEMU answering QMP (PlasmaVMC: creates to status `running`; raw: QEMUs "
      f"spawned together), with every guest booting under software emulation on {cores} cores meanwhile:\n")
print("| measure | raw QEMU | PlasmaVMC | ratio |")
print("|---|---:|---:|---:|")
print(f"| {concurrent['count']} concurrent starts | {raw_concurrent / 1000:.1f} s | {concurrent['value'] / 1000:.1f} s | "
      f"{concurrent['value'] / raw_concurrent:.2f}x |")
print()
print("The raw line spawns every QEMU before any guest runs, and a QEMU answers QMP within milliseconds of its")
print("spawn; PlasmaVMC's creates are placed, given their disks and started as they come, so the later starts")
print("(qemu-img, QEMU's own start) share the two cores with the earlier guests' emulated CPUs, and `running` also")
print("waits for the QMP handshake and a status write. With KVM the guests would not hold the cores.\n")
downtime, total = rows["migration_downtime_ms"]["values"], rows["migration_total_ms"]["values"]
met = "met" if pct(downtime, 99) <= 300 else "not met"
print(f"Live migration, {len(downtime)} moves back and forth between two nodes on this machine (the guest's root disk on a")
print("LightningStor volume over NBD, 256 MiB of guest memory, the stream over TLS): the downtime is QEMU's own")
print("measure (the guest paused while its last memory and device state cross); \"request to running\" is from the")
print("migrate call until the VM's status says running on the target.\n")
print("| measure | p50 | p99 | goal |")
print("|---|---:|---:|---|")
print(f"| downtime | {pct(downtime, 50):.0f} ms | {pct(downtime, 99):.0f} ms | <= 300 ms ({met}) |")
print(f"| request to running on the target | {pct(total, 50):.0f} ms | {pct(total, 99):.0f} ms | |")
