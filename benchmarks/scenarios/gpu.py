"""GPU scenario: nothing is measured here; the GPU results come from a GPU machine.

``benchmarks/gpu/device_check.sh`` (owned with the CUDA engine) builds histgpu, runs the GPU
tests and ``benchmarks/gpu/bench_gpu.py`` there (histgpu's CUDA engine against ``torch.histc``,
``cupy.histogram``, CUB's histogram, the device-to-device copy ceiling, many-tensor batches),
and writes ``bench_gpu.md``. Saved as ``benchmarks/results/gpu*.md`` (or ``bench_gpu*.md``),
those files are included in the suite's index by this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from benchmarks._context import Context

NAME = "gpu"
TITLE = "GPU histograms (from benchmarks/gpu/device_check.sh on a GPU machine)"
PATTERNS = ("gpu*.md", "bench_gpu*.md")


def result_files(out_dir: Path) -> List[Path]:
    """GPU result pages present in ``out_dir``, sorted by name."""
    found = {p for pat in PATTERNS for p in Path(out_dir).glob(pat) if p.is_file()}
    return sorted(found)


def _demote(text: str) -> List[str]:
    """The page's lines with its headings pushed two levels down (to nest in the index)."""
    return [("##" + ln) if ln.startswith("#") else ln for ln in text.strip().splitlines()]


def run(ctx: Context) -> Dict[str, Any]:
    files = result_files(ctx.out_dir)
    if files:
        ctx.progress(NAME, "including " + ", ".join(p.name for p in files))
        lines: List[str] = []
        for p in files:
            lines += [f"From [`{p.name}`]({p.name}):", ""] + _demote(p.read_text()) + [""]
    else:
        ctx.progress(NAME, "no GPU results in the results folder (run benchmarks/gpu/device_check.sh on a GPU)")
        lines = [
            "No GPU results yet. On a machine with an NVIDIA GPU run `bash benchmarks/gpu/device_check.sh` "
            "(it writes `bench_gpu.md` into `$OUT`) and save that file as `benchmarks/results/gpu.md`; the next "
            "`make bench` includes it here.",
            "",
        ]
    return {"name": NAME, "title": TITLE, "markdown": files[0].name if files else None, "plots": [], "written": [],
            "headline": lines, "seconds": 0.0}
