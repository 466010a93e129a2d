"""Shared by the benchmark reports: with several rounds of the same measurements, each keeps its
best round (the most operations per second)."""


def best(rows, key):
    """The row with the most operations per second for each `key(row)`."""
    by = {}
    for r in rows:
        k = key(r)
        if k not in by or r["per_second"] > by[k]["per_second"]:
            by[k] = r
    return by
