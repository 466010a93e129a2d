"""The volumes section of docs/benchmarks.md from scripts/bench-volumes' fio results: IOPS,
MiB/s, p50/p99 completion latency per line and target, and ratios to qemu-nbd.
Usage: bench_volumes_report.py RESULTS.jsonl SECONDS SIZE"""
import json
import sys

path, seconds, size = sys.argv[1], sys.argv[2], sys.argv[3]
every = [json.loads(line) for line in open(path) if line.strip()]
rows = [r for r in every if "read" in r]
iscsi = [r for r in every if "iops" in r]
by = {(r["target"], r["line"]): r for r in rows}
lines = []
for r in rows:
    if r["line"] not in lines:
        lines.append(r["line"])


def figures(r):
    side = r["write"] if r["line"].startswith(("randwrite", "write")) else r["read"]
    pct = side.get("clat_ns", {}).get("percentile", {})
    p50 = pct.get("50.000000", 0) / 1e6
    p99 = pct.get("99.000000", 0) / 1e6
    return side["iops"], side["bw"] / 1024, p50, p99


out = [
    "## Block volumes (`scripts/bench-volumes`)",
    "",
    f"fio's nbd engine (libnbd, plain TCP) for {seconds} s per line over a {size} volume, after filling it,",
    "against qemu-nbd exporting a file on the same disk in the same run. r1: a volume with one replica;",
    "r3: three replicas on three lightningstor nodes of this machine (every copy on the same disk).",
    "",
    "| line | qemu-nbd IOPS | r1 IOPS | r1/qemu-nbd | r3 IOPS | r3/qemu-nbd | MiB/s qemu-nbd / r1 / r3 | p50 ms qemu-nbd / r1 / r3 | p99 ms qemu-nbd / r1 / r3 |",
    "|---|---|---|---|---|---|---|---|---|",
]
for line in lines:
    f = {t: figures(by[(t, line)]) for t in ("qemu-nbd", "r1", "r3") if (t, line) in by}
    base = f.get("qemu-nbd")

    def ratio(t):
        return f"{f[t][0] / base[0]:.2f}x" if base and t in f and base[0] else "-"

    def col(i, fmt):
        return " / ".join(fmt.format(f[t][i]) if t in f else "-" for t in ("qemu-nbd", "r1", "r3"))

    iops = {t: f"{f[t][0]:.0f}" if t in f else "-" for t in ("qemu-nbd", "r1", "r3")}
    out.append(
        f"| {line} | {iops['qemu-nbd']} | {iops['r1']} | {ratio('r1')} | {iops['r3']} | {ratio('r3')} | "
        f"{col(1, '{:.1f}')} | {col(2, '{:.2f}')} | {col(3, '{:.2f}')} |"
    )
print("\n".join(out))

by_i = {(r["target"], r["line"]): r for r in iscsi}
lines_i = []
for r in iscsi:
    if r["line"] not in lines_i:
        lines_i.append(r["line"])
if lines_i:
    out = [
        "",
        "Over iSCSI, against Linux's tgt exporting a file on the same disk: reads with libiscsi's iscsi-perf",
        "(random 4 KiB, sequential 1 MiB), writes with `qemu-img bench -w` (sequential; no iSCSI initiator here",
        "issues random writes but the kernel's). Neither tool reports latency percentiles.",
        "",
        "| line | tgt IOPS | r1 IOPS | r1/tgt | r3 IOPS | r3/tgt | MiB/s tgt / r1 / r3 |",
        "|---|---|---|---|---|---|---|",
    ]
    for line in lines_i:
        f = {t: by_i[(t, line)] for t in ("tgt", "r1", "r3") if (t, line) in by_i}
        base = f.get("tgt", {}).get("iops", 0)

        def cell(t):
            return f"{f[t]['iops']:.0f}" if t in f else "-"

        def ratio(t):
            return f"{f[t]['iops'] / base:.2f}x" if t in f and base else "-"

        mibs = " / ".join(f"{f[t]['mibs']:.1f}" if t in f else "-" for t in ("tgt", "r1", "r3"))
        out.append(f"| {line} | {cell('tgt')} | {cell('r1')} | {ratio('r1')} | {cell('r3')} | {ratio('r3')} | {mibs} |")
    print("\n".join(out))
