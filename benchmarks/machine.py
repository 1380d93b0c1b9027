"""The machine a benchmark ran on: the CPU (model, family, the vector extensions normreg's
tiers care about), the tier normreg dispatched to, and the tiers this CPU supports."""

import os
import platform

import normreg

# the flags behind normreg's x86-64 tiers, and a few that tell CPU generations apart
TIER_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl")
EXTRA_FLAGS = ("avx512_bf16", "avx512_vnni", "avx_vnni", "sha_ni", "asimd", "sve")


def _cpuinfo():
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if info:
                        break
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


# Intel family 6 server models a VM's bare "Intel(R) Xeon(R) Processor" may hide
INTEL_SERVER = {
    "106": ", Ice Lake",
    "143": ", Sapphire Rapids",
    "167": ", Rocket Lake",
    "173": ", Granite Rapids",
    "207": ", Emerald Rapids",
}


def cpu():
    """A dict: ``model`` (lscpu's model name), ``vendor``, ``family``, ``model_number``,
    ``flags`` (the tier-relevant ones present), ``zen4`` (an AMD family 25 CPU with AVX-512)
    and ``name``, one line naming it all (VMs often show only the brand, "AMD EPYC")."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    present = [f for f in TIER_FLAGS + EXTRA_FLAGS if f in flags]
    vendor = info.get("vendor_id", info.get("CPU implementer", "?"))
    family, model = info.get("cpu family", "?"), info.get("model", "?")
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown"
    zen4 = vendor == "AuthenticAMD" and family == "25" and "avx512f" in flags
    zen5 = vendor == "AuthenticAMD" and family == "26"
    generation = ", Zen 4" if zen4 else ", Zen 5" if zen5 else ""
    if vendor == "GenuineIntel" and family == "6":  # model numbers from Intel's SDM
        generation = INTEL_SERVER.get(model, generation)
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()
    return {
        "model": name,
        "vendor": vendor,
        "family": family,
        "model_number": model,
        "flags": present,
        "zen4": zen4,
        "name": f"{name} (family {family}, model {model}, {isa}{generation})",
    }


def tiers(config=None):
    """(active tier, tiers this CPU supports, best first) as normreg reports them; `config`:
    a `show_config(mode="dicts")` already read, else read here."""
    cpu_config = (config or normreg.show_config(mode="dicts"))["CPU"]
    return cpu_config["capability"], list(cpu_config["supported"])


def describe():
    """The machine fields every benchmark JSON carries."""
    c = cpu()
    config = normreg.show_config(mode="dicts")  # once, for the tier and the BLAS
    tier, supported = tiers(config)
    blas = config["BLAS"]
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": c["name"],
        "cpu_model": c["model"],
        "cpu_flags": " ".join(c["flags"]),
        "zen4": c["zen4"],
        "tier": tier,
        "tiers_supported": supported,
        "tier_forced": os.environ.get("NORMREG_CPU_CAPABILITY") or None,
        # OpenBLAS's kernel set and the variable that can force it: the GEMM rows depend on both
        "blas_core": blas.get("core") or "?",
        "OPENBLAS_CORETYPE": blas.get("OPENBLAS_CORETYPE"),
    }
