"""Turns ycsb-bench results (JSON lines with system, nodes, workload) into the FlareDB section
of docs/benchmarks.md: flaredb beside chainfire, etcd and raw RocksDB, with the goal ratios."""
import json
import sys

from bench_rows import best

results = [json.loads(line) for line in open(sys.argv[1])]
cores, etcd_version, settings = sys.argv[2], sys.argv[3], sys.argv[4]
# With several rounds, each cell keeps its best round.
by = best(results, lambda r: (r["system"], r["nodes"], r["workload"]))
systems = [("flaredb", 1), ("flaredb", 3), ("chainfire", 1), ("chainfire", 3), ("etcd", 1), ("etcd", 3), ("rocksdb", 1)]
workloads = ["A", "B", "C", "F"]


def cell(system, nodes, workload):
    r = by.get((system, nodes, workload))
    if not r:
        return "—"
    errors = f", {r['errors']} errors" if r["errors"] else ""
    return f"{r['per_second']:.0f} ({r['p50_ms']:.2f} / {r['p99_ms']:.2f}{errors})"


def ratio(a, b, workload):
    x, y = by.get(a + (workload,)), by.get(b + (workload,))
    if not x or not y or not y["per_second"]:
        return "—"
    return f"{x['per_second'] / y['per_second']:.2f}"


print("## FlareDB, chainfire, etcd and raw RocksDB (YCSB)\n")
print(f"Produced by `scripts/bench-flaredb` in one run on one machine ({cores} cores): the same records and")
print(f"operations through `ycsb-bench` ({settings}; zipfian keys, 1 KiB values) against flaredb (strong")
print(f"namespace, via its client crate), chainfire and {etcd_version} (linearizable reads), all with TLS")
print("and mutual TLS between peers, and RocksDB opened in the driver's own process (no network, no")
print("Raft: the physical limit). Workloads: A 50% read / 50% update, B 95% read, C read only, F 50% read /")
print("50% read-modify-write. Cells: operations per second (p50 / p99 ms).\n")
print("| system | " + " | ".join(workloads) + " |")
print("|---|" + "---:|" * len(workloads))
for system, nodes in systems:
    label = f"{system} ×{nodes}" if system != "rocksdb" else "RocksDB in-process"
    print(f"| {label} | " + " | ".join(cell(system, nodes, w) for w in workloads) + " |")
print()
print("| ratio | " + " | ".join(workloads) + " |")
print("|---|" + "---:|" * len(workloads))
for name, a, b in [
    ("flaredb ×3 / etcd ×3 (goal ≥ 3 on A and C)", ("flaredb", 3), ("etcd", 3)),
    ("flaredb ×1 / etcd ×1", ("flaredb", 1), ("etcd", 1)),
    ("flaredb ×3 / chainfire ×3", ("flaredb", 3), ("chainfire", 3)),
    ("flaredb ×1 / RocksDB in-process (goal on C: ≥ 0.5)", ("flaredb", 1), ("rocksdb", 1)),
]:
    print(f"| {name} | " + " | ".join(ratio(a, b, w) for w in workloads) + " |")
print()
