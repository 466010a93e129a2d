#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (committed; rerun after changing the fixtures):
corpus/query/ a few dozen valid queries for names in flashdns/tests/zones/*.zone (existing,
missing, wildcard, delegated, DNAME, other zones, with and without EDNS, the DO bit, upper
case, TCP-only types), and corpus/zonefile/ the fixtures themselves (first byte: 0, no origin).
Usage: flashdns/fuzz/seeds.py"""
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent
ZONES = HERE.parent / "tests" / "zones"
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33,
         "DNAME": 39, "DS": 43, "RRSIG": 46, "DNSKEY": 48, "CAA": 257, "ANY": 255, "AXFR": 252}


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, name, qtype, edns=None, do=False, rd=True):
    """A query: header, one question, and an OPT record when `edns` is a payload size."""
    flags = 0x0100 if rd else 0
    arcount = 1 if edns else 0
    msg = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, arcount)
    msg += wire_name(name) + struct.pack(">HH", TYPES[qtype], 1)
    if edns:
        msg += b"\0" + struct.pack(">HHBBHH", 41, edns, 0, 0, 0x8000 if do else 0, 0)
    return msg


def owners(path):
    """The owner names a master file writes in its first column, made absolute."""
    origin, names = path.name[: -len(".zone")] + ".", []
    for line in path.read_text().splitlines():
        if line.startswith("$ORIGIN"):
            origin = line.split()[1]
        if not line or line[0] in " \t;$(" or line.startswith(")"):
            continue
        owner = line.split()[0]
        name = origin if owner == "@" else owner if owner.endswith(".") else f"{owner}.{origin}"
        if name not in names:
            names.append(name)
    return names


def main():
    out = HERE / "corpus" / "query"
    out.mkdir(parents=True, exist_ok=True)
    seeds = {}
    qid = 0x1000
    for zone in sorted(ZONES.glob("*.zone")):
        names = owners(zone)
        apex = names[0]
        cases = [(apex, "SOA", None), (apex, "NS", 1232), (apex, "ANY", None), (apex, "DNSKEY", 1232),
                 (f"nxdomain-{qid}.{apex}", "A", 1232), (apex, "AXFR", None)]
        for name in names[1:6]:
            cases.append((name, "A", 1232 if len(cases) % 2 else None))
            cases.append((name, "AAAA" if "arpa" not in apex else "PTR", 4096))
        for name, qtype, edns in cases:
            qid += 1
            seeds[f"{name}{qtype}{'-edns' if edns else ''}"] = query(qid, name, qtype, edns, do=qid % 3 == 0)
    seeds["upper-case-WWW.EXAMPLE.TEST.A"] = query(1, "WWW.Example.TEST.", "A", 512)
    seeds["outside-any-zone.A"] = query(2, "www.example.org.", "A", 1232)
    seeds["health.local.A"] = query(3, "health.local.", "A")
    seeds["small-payload-TXT"] = query(4, "big.dig.test.", "TXT", 512)
    seeds["no-rd-MX"] = query(5, "example.test.", "MX", 1232, rd=False)
    seeds["dname-below"] = query(6, "a.old.dig.test.", "A", 1232, do=True)
    seeds["wildcard-TXT"] = query(7, "x.any.other.test.", "TXT", 1232)
    seeds["compressed-question-pointer"] = struct.pack(">HHHHHH", 8, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\1\0\1"
    for name, data in seeds.items():
        (out / name.replace("/", "_").replace("*", "wildcard")).write_bytes(data)
    zone_out = HERE / "corpus" / "zonefile"
    zone_out.mkdir(parents=True, exist_ok=True)
    for zone in sorted(ZONES.glob("*.zone")):
        (zone_out / zone.name).write_bytes(b"\0" + zone.read_bytes())
    (zone_out / "relative-with-origin").write_bytes(b"\1$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n")
    print(f"{len(seeds)} query seeds in {out}, {len(list(zone_out.iterdir()))} zone files in {zone_out}")


if __name__ == "__main__":
    main()
