"""The PrismNET section of docs/benchmarks.md from scripts/bench-prismnet's results.
Usage: bench_prismnet_report.py RESULTS.jsonl CORES"""
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


pings = rows["port_to_ping_ms"]["values"]
gbps = {k: rows[k]["value"] / 1e9 for k in ("overlay_bps", "overlay_unfiltered_bps", "overlay_1000_rules_bps", "veth_routed_bps", "vxlan_by_hand_bps")}
p99 = pct(pings, 99)
print("## PrismNET (tenant networks on the kernel)\n")
print(f"Produced by `scripts/bench-prismnet` in one run on one machine ({cores} cores): two test hosts (network")
print("namespaces on one bridge, the underlay) with prismnet-server on each (debug build, dependencies optimised;")
print("chainfire, flaredb and IAM on a third). Machines are namespaces attached to ports (veth, configured by")
print("prismnet). Throughput is iperf3, one TCP stream, machine on host 1 to machine on host 2, best of the run's")
print("rounds; every line measured in the same run on the same hosts.\n")
print("| measure | value | goal |")
print("|---|---:|---|")
print(f"| port create to first answered ping, p50 ({len(pings)} ports) | {pct(pings, 50):.0f} ms | |")
print(f"| port create to first answered ping, p99 | {p99:.0f} ms | <= 200 ms ({'met' if p99 <= 200 else 'not met'}) |")
print(f"| max | {max(pings):.0f} ms | |")
print()
print("| path (host 1 to host 2) | Gbit/s | vs hand-built VXLAN | goal |")
print("|---|---:|---:|---|")
hand = gbps["vxlan_by_hand_bps"]
ratio = gbps["overlay_unfiltered_bps"] / hand
rules = gbps["overlay_1000_rules_bps"] / gbps["overlay_bps"]
print(f"| VXLAN built by hand with iproute2, no rules (the ceiling) | {hand:.2f} | 1.00x | |")
print(f"| PrismNET overlay, ports unfiltered (no connection tracking), like the ceiling | {gbps['overlay_unfiltered_bps']:.2f} | {ratio:.2f}x | >= 0.95x ({'met' if ratio >= 0.95 else 'not met'}) |")
print(f"| PrismNET overlay, security groups and anti-spoofing on (stateful) | {gbps['overlay_bps']:.2f} | {gbps['overlay_bps'] / hand:.2f}x | |")
print(f"| PrismNET overlay, 1,000 rules on the receiving port | {gbps['overlay_1000_rules_bps']:.2f} | {gbps['overlay_1000_rules_bps'] / hand:.2f}x | cost <= 10%: {1 - rules:+.1%} of the overlay ({'met' if rules >= 0.90 else 'not met'}) |")
print(f"| plain veth routing, no encapsulation (for scale) | {gbps['veth_routed_bps']:.2f} | {gbps['veth_routed_bps'] / hand:.2f}x | |")
print()
print("How to read it: the port-to-ping time includes the REST call that creates the port (curl on the control")
print("plane node, about 25 ms), chainfire's watch reaching both hosts, the receiving host programming the new")
print("port's entries and the sending host plugging and configuring the veth; the ping's first packet crosses")
print("the overlay. Security groups are stateful: replies and established flows are accepted before any rule,")
print("so 1,000 rules cost only a flow's first packet, and what filtering costs per packet is connection")
print("tracking (the stateful line against the unfiltered one); a VPC whose ports on a host are all unfiltered")
print("has no tables there and runs at the hand-built overlay's speed.")
