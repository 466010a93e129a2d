"""Replaces one section of a benchmarks page (between <!-- begin NAME --> and <!-- end NAME -->)
with standard input, or appends it; so each benchmark command rewrites only its own results.
Usage: bench_section.py FILE NAME < section.md"""
import os
import sys

path, name = sys.argv[1], sys.argv[2]
begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
block = f"{begin}\n{sys.stdin.read().rstrip()}\n{end}\n"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1].lstrip("\n")
    text = head + block + ("\n" + tail if tail else "")
else:
    text = text.rstrip() + "\n\n" + block
open(path, "w").write(text)
