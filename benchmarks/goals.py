"""The goals of the CPU-tier performance issue, checked against one tier's results.

Each goal row is ``(goal, measured, status, shortfall, evidence)``: the evidence names the
measurement from the same run that shows where the time goes when a goal is missed (the
bound), so a table of unmet goals is never only a verdict. The goals hold per tier, at 2
threads, with every ratio taken between implementations timed in the same rounds.
"""

NORM_SHAPES = (64, 128, 1024, 4096)


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def _verdict(value, target, higher):
    met = value >= target if higher else value <= target
    margin = value / target if higher else target / value
    return ("met", "") if met else ("NOT met", f"{(1 - margin) * 100:.0f}% short")


class Table:
    """Goal rows, and beside each (in ``specs``) what decides it: ``(value, target, higher,
    unit, fmt)``, or None for a row that only notes something."""

    def __init__(self):
        self.rows = []
        self.specs = []

    def add(self, goal, value, target, higher=True, unit="", fmt="{:.2f}", evidence=""):
        if value is None:
            self.rows.append((goal, "not measured", "-", "", evidence))
            self.specs.append(None)
            return
        status, short = _verdict(value, target, higher)
        self.rows.append((goal, fmt.format(value) + unit, status, short, evidence))
        self.specs.append((value, target, higher, unit, fmt))

    def note(self, goal, measured, status, evidence=""):
        self.rows.append((goal, measured, status, "", evidence))
        self.specs.append(None)


def _ms(s):
    return "-" if s is None else f"{s * 1e3:.2f} ms"


def _us(s):
    return "-" if s is None else f"{s * 1e6:.1f} us"


def _kernel_goals(t, res, threads):
    K = res.get("kernels", [])

    def kr(name, D, direction="f+b"):
        return find(K, kernel=name, N=8192, D=D, dir=direction, threads=threads)

    for name, label in (("layernorm", "LayerNorm"), ("batchnorm", "BatchNorm1d")):
        for D in NORM_SHAPES:
            r, f, b = kr(name, D), kr(name, D, "fwd"), kr(name, D, "bwd")
            tgt = 70 if D == 64 else 80
            ev = ""
            if f and b:
                ev = f"fwd {f['roof_pct']:.0f}%, bwd {b['roof_pct']:.0f}% of the copy"
                ev += f" at {r['copy_gbs']:.1f} GB/s"
            t.add(
                f"{label} f+b 8192x{D}: >= {tgt}% of roofline",
                r and r["roof_pct"],
                tgt,
                unit="%",
                fmt="{:.0f}",
                evidence=ev,
            )
            ev = f"torch {_us(r['torch'])} vs {_us(r['normreg'])}" if r and r.get("torch") else ""
            t.add(
                f"{label} f+b 8192x{D}: faster than torch as run",
                r and r.get("ratio_torch"),
                1.0,
                unit="x",
                evidence=ev,
            )
    r, f, b = kr("dropout", 1024), kr("dropout", 1024, "fwd"), kr("dropout", 1024, "bwd")
    ev = f"fwd {f['roof_pct']:.0f}%, bwd {b['roof_pct']:.0f}% of the copy" if f and b else ""
    t.add(
        "Dropout f+b 8192x1024: >= 85% of roofline",
        r and r["roof_pct"],
        85,
        unit="%",
        fmt="{:.0f}",
        evidence=ev,
    )
    t.add("Dropout f+b 8192x1024: >= 15x torch as run", r and r.get("ratio_torch"), 15, unit="x")


def _tiny_goals(t, res, zen4):
    tiny = res.get("tiny")
    if not tiny:
        t.add("Tiny LayerNorm(64) Module call on 32x64: <= 2x np.add(x, 1.0)", None, 2)
        return
    ev = (
        f"module {_us(tiny['module'])}, binding {_us(tiny['binding'])}, kernel {_us(tiny['kernel'])}, "
        f"np.add {_us(tiny.get('np_add'))}"
    )
    ratio = tiny["module"] / tiny["np_add"] if tiny.get("np_add") else None
    t.add(
        "Tiny LayerNorm(64) Module call on 32x64: <= 2x np.add(x, 1.0)",
        ratio,
        2,
        higher=False,
        unit="x",
        evidence=ev,
    )
    if zen4:
        t.add(
            "Tiny LayerNorm Module call: <= 1.5 us (Zen 4)",
            tiny["module"] * 1e6,
            1.5,
            higher=False,
            unit=" us",
            fmt="{:.2f}",
        )
    else:
        t.note(
            "Tiny LayerNorm Module call: <= 1.5 us (Zen 4)",
            f"{tiny['module'] * 1e6:.2f} us",
            "n/a (not a Zen 4)",
        )


def _linear_goals(t, res, threads):
    for row in res.get("linear", []):
        if row["threads"] != threads:
            continue
        name = f"Linear f+b batch {row['batch']} {row['in']}->{row['out']}"
        if "sgemm_1thread" in row:  # skinny: against the 1-thread call
            ratio, base, what = (
                beside(row) / row["sgemm_1thread"],
                row["sgemm_1thread"],
                "the 1-thread sgemm",
            )
        else:
            ratio, base, what = beside(row) / row["sgemm"], row["sgemm"], "direct sgemm"
        ev = f"normreg {_us(beside(row))} against {_us(base)} of products"
        t.add(f"{name}: within 1.10x of {what}", ratio, 1.10, higher=False, unit="x", evidence=ev)


def beside(row):
    """normreg's time in the phase of the products it is measured against (results from
    before that phase have only its time beside PyTorch)."""
    return row.get("normreg_apart", row["normreg"])


def _mlp_goals(t, res, threads):
    for B in (128, 512):
        r = find(res.get("mlp", []), batch=B, threads=threads)
        ev = ""
        if r and r.get("floor"):
            ev = (
                f"step {_ms(beside(r))} = products {_ms(r['floor'])} + "
                f"{_ms(beside(r) - r['floor'])} around them (optimizer {_ms(r.get('optim'))})"
            )
        t.add(
            f"MLP step batch {B}: <= 1.25x its GEMM floor",
            r and r.get("ratio_floor"),
            1.25,
            higher=False,
            unit="x",
            evidence=ev,
        )
        t.add(f"MLP step batch {B}: >= 2x torch", r and r.get("ratio_torch"), 2, unit="x")
        if r and r.get("ratio_jax") is not None:
            t.add(
                f"MLP step batch {B}: faster than jax.jit (XLA)",
                r["ratio_jax"],
                1.0,
                unit="x",
                evidence=f"jax {_ms(r['jax'])}",
            )
        elif r:
            t.note(f"MLP step batch {B}: faster than jax.jit (XLA)", "-", "skipped (JAX not installed)")
        else:
            t.add(f"MLP step batch {B}: faster than jax.jit (XLA)", None, 1.0)


def _optim_goals(t, res, threads):
    for name in ("SGD", "AdamW"):
        r = find(res.get("optim", []), optimizer=name, threads=threads)
        ev = f"{r['gbs']:.1f} GB/s against the copy's {r['copy_gbs']:.1f}" if r else ""
        t.add(
            f"{name} step: >= 80% of the roofline of its bytes",
            r and r["roof_pct"],
            80,
            unit="%",
            fmt="{:.0f}",
            evidence=ev,
        )


def goal_table(res, threads=2):
    """The goals of one tier's results (``res``: one run of benchmarks/run.py) as a Table."""
    t = Table()
    _kernel_goals(t, res, threads)
    _tiny_goals(t, res, res.get("machine", {}).get("zen4", False))
    _linear_goals(t, res, threads)
    _mlp_goals(t, res, threads)
    _optim_goals(t, res, threads)
    return t


def goals(res, threads=2):
    """The goal rows of one tier's results."""
    return goal_table(res, threads).rows


def median_goals(results, threads=2):
    """The goal rows of several runs of the same command for one tier (``results``, a list):
    a goal's status is its median run's (of an odd count of runs; the upper of the middle
    two otherwise), its measured column gives that value and, in brackets, every run's in
    order, and its evidence comes from that run. A run that measured a goal the others did
    not leaves the row to the first run's."""
    tables = [goal_table(res, threads) for res in results]
    rows = []
    for k, row in enumerate(tables[0].rows):
        same = [t for t in tables if len(t.rows) > k and t.rows[k][0] == row[0]]
        specs = [t.specs[k] for t in same]
        if len(same) < len(tables) or any(s is None for s in specs):
            rows.append(row)
            continue
        order = sorted(range(len(specs)), key=lambda i: specs[i][0])
        m = order[len(order) // 2]
        value, target, higher, unit, fmt = specs[m]
        status, short = _verdict(value, target, higher)
        runs = ", ".join(fmt.format(s[0]) for s in specs)
        evidence = same[m].rows[k][4]
        evidence = f"{evidence} (run {m + 1})" if evidence else f"run {m + 1}"
        rows.append((row[0], f"{fmt.format(value)}{unit} ({runs})", status, short, evidence))
    return rows


def markdown(rows):
    lines = [
        "| goal | measured | status | shortfall | where the time goes (same run) |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines
