"""Formatting of times, ratios and sizes for the benchmark tables.

Shared by the suite (through common.py) and by report.py, which writes BENCHMARKS.md.
``sep`` goes between a number and its unit ("" for the console tables, " " for BENCHMARKS.md).
"""


def fmt_time(s, sep=""):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f}{sep}us"
    if s < 1:
        return f"{s * 1e3:.2f}{sep}ms"
    return f"{s:.2f}{sep}s"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def fmt_bytes(b, sep=""):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size:
            return f"{b / size:.1f}{sep}{unit}"
    return f"{b}{sep}B"
