"""``run.py --tiers``: the suite once per CPU tier, each in a fresh process.

normreg picks its kernels' tier once, at import, from the CPU and ``NORMREG_CPU_CAPABILITY``
(see docs/building.md), so each tier needs a process of its own: this runs
``benchmarks/run.py`` with the same options under each tier the CPU supports (or the ones
asked for), checks that the process really ran that tier, and gathers the results in one
JSON, ``{"command", "machine", "tiers": {tier: the run's results}}``, that
``benchmarks/report.py`` turns into a goal table per tier. The lower tiers are measured on
whatever CPU runs this, through the override: their table says so.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import machine

RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")


def command(argv):
    """The command line a run is recorded under."""
    return " ".join(["python", "benchmarks/run.py", *argv])


def _without(argv, option, takes_value):
    """argv without ``option`` (``--opt value``, ``--opt=value`` or, when the value is
    optional, a bare ``--opt``)."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == option:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            skip = takes_value is True or (takes_value == "optional" and nxt and not nxt.startswith("-"))
            continue
        if a.startswith(option + "="):
            continue
        out.append(a)
    return out


def selected(request, supported):
    """The tiers to run, best first: every supported one for ``"all"``, else those of the
    comma-separated ``request`` the CPU supports (the others are named and skipped)."""
    if request == "all":
        return list(supported)
    wanted = [t.strip() for t in request.split(",") if t.strip()]
    for t in wanted:
        if t not in supported:
            print(f"# --tiers: this CPU does not support {t!r} (supported: {', '.join(supported)}); skipped")
    return [t for t in supported if t in wanted]


def run_tiers(request, argv, json_path):
    active, supported = machine.tiers()
    chosen = selected(request, supported)
    if not chosen:
        raise SystemExit(f"--tiers {request}: no supported tier to run (supported: {', '.join(supported)})")
    child_argv = _without(_without(argv, "--tiers", "optional"), "--json", True)
    out = {
        "command": command(argv),
        "machine": {**machine.describe(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
        "tiers": {},
    }
    print(f"# normreg benchmarks per CPU tier: {', '.join(chosen)} on {out['machine']['cpu']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for tier in chosen:
            path = os.path.join(tmp, f"{tier}.json")
            env = dict(os.environ, NORMREG_CPU_CAPABILITY=tier)
            print(f"\n# ==== tier {tier} (NORMREG_CPU_CAPABILITY={tier}) ====", flush=True)
            res = subprocess.run([sys.executable, RUN, *child_argv, "--json", path], env=env)
            if res.returncode != 0:
                raise SystemExit(f"the run under tier {tier} failed (exit status {res.returncode})")
            with open(path) as f:
                result = json.load(f)
            ran = result["machine"].get("tier")
            if ran != tier:
                raise SystemExit(f"asked for tier {tier}, the run reports {ran!r}")
            out["tiers"][tier] = result
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\n# wrote {json_path}: python benchmarks/report.py {json_path} -> BENCHMARKS.md")
    return out
