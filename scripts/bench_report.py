"""Turns etcd-bench results (JSON lines) into docs/benchmarks.md: chainfire beside etcd, ratios."""
import json
import sys

results = [json.loads(line) for line in open(sys.argv[1])]
cores, etcd_version = sys.argv[2], sys.argv[3]
by = {(r["members"], r["label"], r["system"]): r for r in results}

print("## Chainfire and etcd (the etcd v3 API)\n")
print("Produced by `scripts/bench-chainfire` in one run on one machine "
      f"({cores} cores): chainfire and {etcd_version} (Debian `etcd-server`), each with client TLS")
print("and mutual TLS between peers, driven by the same load generator (`crates/etcd-bench`) with")
print("the same settings; keys 8 bytes, values 256 bytes. Ratios are chainfire / etcd: above 1 is")
print("faster for throughput; for latency, below 1 is better. Both run on this machine together with")
print("the load generator, so absolute numbers are small; the ratios are what to read.\n")
for members in (1, 3):
    print(f"### {members} member{'s' if members > 1 else ''} on loopback\n")
    print("| workload | chainfire ops/s | etcd ops/s | ratio | chainfire p50 / p99 ms | etcd p50 / p99 ms | p99 ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    labels = [r["label"] for r in results if r["members"] == members and r["system"] == "chainfire"]
    for label in labels:
        c, e = by.get((members, label, "chainfire")), by.get((members, label, "etcd"))
        if not c or not e:
            continue
        ratio = c["per_second"] / e["per_second"] if e["per_second"] else float("nan")
        p99 = c["p99_ms"] / e["p99_ms"] if e["p99_ms"] else float("nan")
        errors = "" if not (c["errors"] or e["errors"]) else f" (errors: chainfire {c['errors']}, etcd {e['errors']})"
        print(f"| {label}{errors} | {c['per_second']:.0f} | {e['per_second']:.0f} | {ratio:.2f} | "
              f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f} | {e['p50_ms']:.2f} / {e['p99_ms']:.2f} | {p99:.2f} |")
    print()
print("Watch fan-out: ops/s is events delivered per second; latency is from just before the put")
print("was sent to the event's arrival at the watcher.")
