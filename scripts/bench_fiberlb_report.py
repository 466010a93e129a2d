"""The FiberLB section of docs/benchmarks.md from scripts/bench-fiberlb's results (one JSON object
per line and round): each line's best round per proxy, ratios FiberLB / HAProxy.
Usage: bench_fiberlb_report.py RESULTS HAPROXY NGINX ROUNDS SECONDS CONNS THREADS CORES"""
import json
import sys

path, haproxy, nginx, rounds, seconds, conns, threads, cores = sys.argv[1:]
rows = [json.loads(line) for line in open(path) if line.strip()]
score = lambda r: r.get("rps", r.get("gbps", 0))
PACED = "HTTP/1.1 keep-alive, paced"
# The best round per proxy and line: the fastest; on the paced line (one offered rate for all)
# the one with the lowest p99.
rank = lambda r: -r["p99_ms"] if r["line"] == PACED else score(r)
best = {}
for r in rows:
    key = (r["proxy"], r["line"])
    if key not in best or rank(r) > rank(best[key]):
        best[key] = r
print("## FiberLB and HAProxy (load balancing)\n")
print(f"Produced by `scripts/bench-fiberlb` in one run on one machine ({cores} cores): FiberLB (chainfire, flaredb")
print(f"and IAM beside it, configured through its REST API, access logs off) and HAProxy {haproxy} (Debian),")
print(f"each with {threads} threads, in front of the same nginx {nginx} (one worker, a 6-byte answer) on loopback,")
print(f"loaded by `wrk -t2 -c{conns} -d{seconds}s --latency`; TCP through each to an iperf3 server (`iperf3 -t 5`).")
print(f"Best of {rounds} rounds per line. Latency is wrk's at saturation ({conns} connections), so it moves with the")
print("rate; \"added\" is the proxy's p50 / p99 minus nginx's own (direct, HTTP lines). Ratios are FiberLB / HAProxy:")
print("above 1 is faster for throughput, below 1 better for latency. wrk, nginx and the proxy share the cores.")
print(f"\"{PACED}\" is the keep-alive load with each connection waiting between requests (wrk's `delay()`),")
print("so all three are compared at one offered rate below saturation (its best round: the lowest p99).\n")
print("| line | FiberLB req/s | HAProxy req/s | ratio | FiberLB p50 / p99 ms | HAProxy p50 / p99 ms | p99 ratio | added p50 / p99 ms, F | added p50 / p99 ms, H | errors (F / H) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in ["HTTP/1.1 keep-alive", "new connection per request", "HTTPS keep-alive (TLS terminated)", PACED]:
    f, h = best.get(("fiberlb", line)), best.get(("haproxy", line))
    if not f or not h:
        continue
    d = best.get(("direct", line.replace("HTTPS keep-alive (TLS terminated)", "HTTP/1.1 keep-alive")))
    added = (f"{f['p50_ms'] - d['p50_ms']:.2f} / {f['p99_ms'] - d['p99_ms']:.2f} | {h['p50_ms'] - d['p50_ms']:.2f} / {h['p99_ms'] - d['p99_ms']:.2f}"
             if d else "— | —")
    print(f"| {line} | {f['rps']:.0f} | {h['rps']:.0f} | {f['rps'] / h['rps']:.2f} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | "
          f"{h['p50_ms']:.2f} / {h['p99_ms']:.2f} | {f['p99_ms'] / h['p99_ms']:.2f} | {added} | "
          f"{f['errors'] + f['non_2xx']} / {h['errors'] + h['non_2xx']} |")
f, h = best.get(("fiberlb", "TCP throughput (iperf3)")), best.get(("haproxy", "TCP throughput (iperf3)"))
if f and h:
    print(f"| TCP throughput (iperf3), Gbit/s | {f['gbps']:.2f} | {h['gbps']:.2f} | {f['gbps'] / h['gbps']:.2f} | — | — | — | — | — | — |")

# Each round measured the two back to back: their ratio round by round, and its median, is the
# comparison least moved by a noisy machine; so is the CPU each spent per request (user and
# system, all threads), which a neighbour's load barely changes.
def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

by_round = {(r["proxy"], r["line"], r["round"]): r for r in rows}
lines = ["HTTP/1.1 keep-alive", "new connection per request", "HTTPS keep-alive (TLS terminated)", PACED, "TCP throughput (iperf3)"]
print("\nRound by round (each measured back to back), FiberLB / HAProxy; CPU is each proxy's per request:\n")
print("| line | rate ratios by round | median | p99 ratios by round | median | CPU µs/request F / H (median) |")
print("|---|---|---:|---|---:|---:|")
for line in lines:
    ratios, p99s, cpu_f, cpu_h = [], [], [], []
    for rnd in sorted({r["round"] for r in rows}):
        f, h = by_round.get(("fiberlb", line, rnd)), by_round.get(("haproxy", line, rnd))
        if not f or not h:
            continue
        ratios.append(score(f) / score(h))
        if h.get("p99_ms"):
            p99s.append(f["p99_ms"] / h["p99_ms"])
        if f.get("cpu_us") and h.get("cpu_us"):
            cpu_f.append(f["cpu_us"])
            cpu_h.append(h["cpu_us"])
    if ratios:
        p99_text = (" ".join(f"{x:.2f}" for x in p99s), f"{median(p99s):.2f}") if p99s else ("—", "—")
        cpu_text = f"{median(cpu_f):.1f} / {median(cpu_h):.1f}" if cpu_f else "—"
        print(f"| {line} | {' '.join(f'{x:.2f}' for x in ratios)} | {median(ratios):.2f} | {p99_text[0]} | {p99_text[1]} | {cpu_text} |")
