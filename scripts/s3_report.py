"""The LightningStor section of docs/benchmarks.md from s3-bench's JSON lines: LightningStor and
Garage side by side per object size, concurrency and operation (ratio of operations per second,
p50/p99), and large-object throughput against the raw disk.
With several rounds, each row keeps its best round (the most operations per second).
Usage: s3_report.py RESULTS CORES SECONDS GARAGE_VERSION [ROUNDS]"""
import json
import sys

from bench_rows import best

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
cores, seconds = sys.argv[2], sys.argv[3]
garage = sys.argv[4].split(" [")[0]
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 1
by = best(rows, lambda r: (r["system"], r["size"], r["concurrency"], r["workload"]))


def size_name(n):
    return f"{n // (1 << 20)} MiB" if n >= 1 << 20 else f"{n // 1024} KiB"


def rate(r):
    if r["workload"] in ("put", "get"):
        return f"{r['per_second']:.1f}/s ({r['mib_per_second']:.1f} MiB/s)"
    return f"{r['per_second']:.1f}/s"


def lat(r):
    return f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}"


print("## LightningStor vs Garage (S3)\n")
print(f"`scripts/bench-lightningstor`: one node on loopback, {cores} cores shared by the servers and the")
print(f"driver (`s3-bench`, Rust, one keep-alive connection per client), PUT phases of {seconds} s at most.")
print("Both plain HTTP; both fsync data and metadata before acknowledging (Garage with")
print(f"`data_fsync` and `metadata_fsync`); {garage}, LMDB. LightningStor's metadata goes through")
print("flaredb (Raft over RocksDB) and every request is authorized by IAM (cached), all on the same cores.")
print("The raw disk writes the same bytes as files (fsync of file and directory) and reads them back.")
print("GET reads every object the PUT phase wrote once, after the page cache was emptied, so reads")
print("come from the disk for all three; bodies are counted as they stream (raw: a reused 1 MiB buffer).")
print("LIST is one page of the same number of keys for every system: 1000 of 4 KiB, 640 of 1 MiB, 10 of 64 MiB")
print("(the PUT phase runs past its 5 s until it has written them). Object data is pseudo-random")
print("(incompressible, as media and backups are; Garage compresses blocks by default).")
if rounds > 1:
    print(f"The three ran in turn {rounds} times; each row is its best round (this machine's disk varies by")
    print("up to 40% between runs).")
print()
print("| size | clients | op | LightningStor | Garage | ratio | p50/p99 ms LightningStor | p50/p99 ms Garage |")
print("|---|---|---|---|---|---|---|---|")
sizes = sorted({r["size"] for r in rows})
concurrency = sorted({r["concurrency"] for r in rows})
for size in sizes:
    for c in concurrency:
        for op in ["put", "get", "list", "delete"]:
            ls, ga = by.get(("lightningstor", size, c, op)), by.get(("garage", size, c, op))
            if not ls or not ga:
                continue
            ratio = ls["per_second"] / ga["per_second"] if ga["per_second"] else float("inf")
            print(f"| {size_name(size)} | {c} | {op} | {rate(ls)} | {rate(ga)} | **{ratio:.2f}x** | {lat(ls)} | {lat(ga)} |")
print("\nLarge objects against the raw disk (MiB/s):\n")
print("| size | clients | op | LightningStor | raw disk | share of the disk |")
print("|---|---|---|---|---|---|")
big = max(sizes)
for c in concurrency:
    for op in ["put", "get"]:
        ls, disk = by.get(("lightningstor", big, c, op)), by.get(("disk", big, c, op))
        if ls and disk and disk["mib_per_second"]:
            share = ls["mib_per_second"] / disk["mib_per_second"]
            print(f"| {size_name(big)} | {c} | {op} | {ls['mib_per_second']:.1f} | {disk['mib_per_second']:.1f} | {share:.0%} |")
errors = [r for r in rows if r.get("errors")]
if errors:
    print("\nErrors: " + ", ".join(f"{r['system']} {size_name(r['size'])} x{r['concurrency']} {r['workload']}: {r['errors']}" for r in errors))
