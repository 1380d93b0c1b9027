"""The build and run-time configuration that ``normreg.show_config()`` reports.

Formatting only: ``normreg/__init__.py`` gathers the facts from the extension and passes
them here, with setup.py's record of the build (``_build_info.py``, written next to the
extension when it is built).
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

BUILD_INFO: dict[str, Any] | None
try:
    from ._build_info import BUILD_INFO as _BUILD_INFO

    BUILD_INFO = dict(_BUILD_INFO)
except ImportError:  # built by something other than setup.py's build_ext
    BUILD_INFO = None

ENV_VAR = "NORMREG_CPU_CAPABILITY"
# OpenBLAS picks its kernels for the CPU when it loads (with normreg's extension), unless this
# variable names a set: read at import, as OpenBLAS read it
BLAS_CORETYPE_VAR = "OPENBLAS_CORETYPE"
BLAS_CORETYPE = os.environ.get(BLAS_CORETYPE_VAR) or None


def describe(
    version: str, tier: str, tiers: dict[str, Any], build: dict[str, Any], blas: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The configuration as a dict of sections (what ``show_config(mode="dicts")`` returns).

    tier: the active tier's name; tiers: ``_C.cpu_tiers()``; build: ``_C.build_info()``;
    blas: ``_C.blas_info()``."""
    info = BUILD_INFO or {}
    request = os.environ.get(ENV_VAR)
    config = blas.get("config") or ""
    words = config.split()
    return {
        "normreg": {"version": version},
        "CPU": {
            "capability": tier,
            ENV_VAR: request if request else None,
            "supported": list(tiers["supported"]),
            "compiled": list(tiers["compiled"]),
            "choices": tiers["choices"],
            "machine": platform.machine(),
        },
        "Compiler": {
            "name": build["compiler"],
            "version": build["compiler_version"].strip(),
            "command": info.get("compiler_command"),
            "flags": info.get("compile_args"),
            "tier_flags": info.get("tiers"),
            "link_flags": info.get("link_args"),
        },
        "OpenMP": {
            "enabled": build["openmp_version"] > 0,
            "version": build["openmp_version"] or None,
            "runtime": build["openmp_library"],
            "build_flags": info.get("openmp", {}).get("compile"),
        },
        "BLAS": {
            "library": info.get("blas"),
            "version": words[1] if len(words) > 1 and words[0] == "OpenBLAS" else None,
            "config": config,
            "core": blas.get("corename"),
            BLAS_CORETYPE_VAR: BLAS_CORETYPE,
            "threads": blas["threads"],
            "threading": blas["threading"],
            "bundled": info.get("blas_bundled"),
            "path": blas.get("library"),
        },
        "Python": {
            "version": platform.python_version(),
            "numpy": np.__version__,
            "numpy_at_build": info.get("numpy"),
            "platform_at_build": info.get("platform"),
        },
    }


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v) if v else "(none)"
    return str(v)


def format_config(config: dict[str, dict[str, Any]]) -> str:
    """The dict of ``describe`` as the text ``show_config()`` prints."""
    lines = []
    for section, items in config.items():
        lines.append(f"{section}:")
        for key, value in items.items():
            if isinstance(value, dict):
                lines.append(f"  {key}:")
                lines += [f"    {k}: {_value(v)}" for k, v in value.items()]
            else:
                lines.append(f"  {key}: {_value(value)}")
    return "\n".join(lines)
