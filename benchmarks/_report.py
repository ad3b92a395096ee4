"""Report helpers shared by the scenarios: machine info, number formats, markdown, plots."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from benchmarks._measure import loadavg, mem_available_bytes, usable_cores
from benchmarks._runner import REPO_ROOT, UNSET_IN_WORKERS, worker_env

#: Distributions whose versions are recorded (read from metadata: nothing is imported).
VERSIONED = (
    "numpy",
    "ml_dtypes",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "tensorboard",
    "tensorboardX",
    "torch",
    "fast-histogram",
    "boost-histogram",
    "matplotlib",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _histgpu_build() -> Dict[str, Any]:
    code = (
        "import json, histgpu; b = histgpu.build_info(); "
        "print(json.dumps({'version': b.get('version'), 'isa': b.get('cpu', {}).get('isa'), "
        "'threads': b.get('default_num_threads')}))"
    )
    try:
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=worker_env(), cwd=REPO_ROOT, timeout=120
        )
        return json.loads(r.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001 - a broken build is reported, not fatal
        return {"version": f"unavailable ({type(e).__name__})"}


def machine_info() -> Dict[str, Any]:
    """CPU, cores, memory, Python and library versions (no heavy imports in this process)."""
    versions: Dict[str, str] = {}
    for dist in VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    return {
        "cpu": _cpu_model(),
        "cores": usable_cores(),
        "mem_bytes": mem,
        "mem_available_bytes": mem_available_bytes(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "histgpu": _histgpu_build(),
        "versions": versions,
        "unset_in_workers": [v for v in UNSET_IN_WORKERS if v in os.environ],
    }


def machine_line(info: Dict[str, Any]) -> str:
    """One markdown paragraph describing the machine and versions."""
    v = info.get("versions", {})
    tf = v.get("tensorflow-cpu") or v.get("tensorflow")
    libs = [f"{name} {v[key]}" for name, key in (
        ("numpy", "numpy"), ("TensorFlow", None), ("Keras", "keras"), ("TensorBoard", "tensorboard"),
        ("tensorboardX", "tensorboardX"), ("PyTorch", "torch"), ("fast-histogram", "fast-histogram"),
        ("boost-histogram", "boost-histogram"),
    ) if key and key in v]
    if tf:
        libs.insert(1, f"TensorFlow {tf}")
    hb = info.get("histgpu", {})
    mem = info.get("mem_bytes")
    text = (
        f"Machine: {info.get('cpu')}, {info.get('cores')} usable cores"
        + (f", {mem / 2**30:.0f} GiB RAM" if mem else "")
        + f"; {info.get('platform')}; Python {info.get('python')}; histgpu {hb.get('version', '?')} "
        f"(CPU kernels: {hb.get('isa', '?')}, {hb.get('threads', '?')} threads by default); "
        + ", ".join(libs) + "."
    )
    if info.get("unset_in_workers"):
        text += " Unset in the benchmark processes: " + ", ".join(info["unset_in_workers"]) + "."
    return text


@dataclass
class ScenarioClock:
    """Wall time and load average at the start and end of one scenario."""

    started: datetime.datetime = field(default_factory=datetime.datetime.now)
    load_start: Optional[Sequence[float]] = field(default_factory=loadavg)
    ended: Optional[datetime.datetime] = None
    load_end: Optional[Sequence[float]] = None

    def stop(self) -> "ScenarioClock":
        self.ended = datetime.datetime.now()
        self.load_end = loadavg()
        return self

    @property
    def seconds(self) -> float:
        end = self.ended or datetime.datetime.now()
        return (end - self.started).total_seconds()

    def as_dict(self) -> Dict[str, Any]:
        return {
            "started": self.started.isoformat(timespec="seconds"),
            "ended": self.ended.isoformat(timespec="seconds") if self.ended else None,
            "seconds": round(self.seconds, 1),
            "loadavg_start": self.load_start,
            "loadavg_end": self.load_end,
        }

    def markdown(self, cores: int) -> str:
        def la(v: Optional[Sequence[float]]) -> str:
            return "/".join(f"{x:.2f}" for x in v) if v else "n/a"

        busy = ""
        vals = [x[0] for x in (self.load_start, self.load_end) if x]
        if vals and max(vals) > cores:
            busy = (f" The 1-minute load exceeded the {cores} cores: other work shared the machine, so times are "
                    "inflated and ratios noisier than usual.")
        return (
            f"Run {self.started.strftime('%Y-%m-%d %H:%M')}, took {self.seconds / 60:.1f} min. "
            f"Load average (1/5/15 min) at start {la(self.load_start)}, at end {la(self.load_end)}.{busy}"
        )


def header(title: str, info: Dict[str, Any], clock: ScenarioClock, command: str) -> List[str]:
    """The common top of every scenario's markdown file."""
    return [
        f"# {title}",
        "",
        clock.markdown(int(info.get("cores") or 1)) + f" Command: `{command}`.",
        "",
        machine_line(info),
        "",
    ]


def fmt_bytes(b: Optional[float]) -> str:
    if b is None:
        return "-"
    if b < 2**20:
        return f"{b / 2**10:.0f} KiB"
    if b < 2**30:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**30:.2f} GiB" if b < 10 * 2**30 else f"{b / 2**30:.0f} GiB"


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms" if s < 0.01 else f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_n(n: int) -> str:
    """``10000000`` -> ``1e7``; values that are not a power of ten keep two digits (``2.5e7``)."""
    m, e = f"{n:.1e}".split("e")
    m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}"


def fmt_rate(gbps: Optional[float]) -> str:
    if gbps is None:
        return "-"
    if gbps >= 10:
        return f"{gbps:.1f}"
    if gbps >= 0.1:
        return f"{gbps:.2f}"
    if gbps >= 0.001:
        return f"{gbps:.3f}"
    return f"{gbps:.1g}"


def fmt_ratio(r: Optional[float]) -> str:
    if r is None:
        return "-"
    return f"{r:.0f}×" if r >= 100 else f"{r:.1f}×"


def table(head: Sequence[str], rows: Iterable[Sequence[str]], align: Optional[str] = None) -> List[str]:
    """A markdown table; ``align`` is one character per column, ``l`` or ``r``."""
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return out


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
