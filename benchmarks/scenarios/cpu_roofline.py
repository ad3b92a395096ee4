"""CPU roofline scenario: histgpu's CPU engine against this machine's own read ceiling.

Everything is measured in one process, in interleaved rounds (every case once per round, the
median over rounds), so that the ratios compare numbers taken under the same load:

* the read ceiling: every default thread reading its part of the data once, with the widest
  vector loads the CPU has (``CpuEngine.read_array``), the same threads and chunks every pass uses;
* per kernel build (AVX2, AVX-512: ``HISTGPU_CPU_ISA``): v2 float32 with 30 and 1000 buckets,
  with one thread and with all of them; v1 float32 (exact sums); v2 and v1 of float16, bfloat16,
  int8 and float8 (the raw-pattern path: one read of the raw bit patterns) and v2 of float64 —
  each as a fraction of its ceiling (two reads for v2 of 32/64-bit data, one for v1 and for the
  raw-pattern path);
* small tensors: one call on 1,000 values against numpy's ``a.min(), a.max()``, and
  ``histogram_many`` on 400 tensors against a Python loop of numpy min + max over them.

The page ends with the goals of the CPU performance issue and whether this run met them.
Writes ``cpu_roofline.md`` and ``cpu_roofline.json`` (``cpu_roofline_full.*`` with ``--full``).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks import _report as rep
from benchmarks._context import Context

NAME = "cpu_roofline"
TITLE = "CPU engine against the machine's read ceiling (roofline)"

SEED = 0
N_REDUCED, N_FULL = 20_000_000, 100_000_000
ROUNDS_REDUCED, ROUNDS_FULL = 9, 21
SMALL_N = 1_000
MANY = 400


def _cpu_flags() -> List[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


class Case:
    """One timed call: `run` and how many reads of `nbytes` its ceiling allows."""

    def __init__(self, key: str, label: str, run: Callable[[], Any], *, nbytes: int = 0, values: int = 0,
                 reads: int = 0, isa: str = "", calls: int = 1, group: str = "") -> None:
        self.key, self.label, self.run, self.nbytes, self.values = key, label, run, nbytes, values
        self.reads, self.isa, self.calls, self.group = reads, isa, calls, group
        self.times: List[float] = []

    def measure(self) -> None:
        if self.isa:
            os.environ["HISTGPU_CPU_ISA"] = self.isa
        else:
            os.environ.pop("HISTGPU_CPU_ISA", None)
        t = time.perf_counter()
        for _ in range(self.calls):
            self.run()
        self.times.append((time.perf_counter() - t) / self.calls)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)


def _data(n: int) -> Dict[str, np.ndarray]:
    import ml_dtypes

    x = np.random.default_rng(SEED).standard_normal(n)
    return {
        "float32": x.astype(np.float32),
        "float64": x,
        "float16": x.astype(np.float16),
        "bfloat16": x.astype(ml_dtypes.bfloat16),
        "int8": np.clip(np.rint(x * 30), -128, 127).astype(np.int8),
        "float8_e4m3fn": x.astype(ml_dtypes.float8_e4m3fn),
    }


def build_cases(n: int, isas: Sequence[str], threads: int) -> Tuple[List[Case], Dict[str, Case]]:
    """Every case of the scenario, and the read ceilings by dtype."""
    import histgpu
    from histgpu import _cpu, _input

    data = _data(n)
    best = _cpu.CpuEngine(threads=threads, isa="")
    cases: List[Case] = []
    reads: Dict[str, Case] = {}
    for name in ("float32", "float64", "float16"):  # float16 stands for every 2-byte dtype
        x = data[name]
        code = _input.plain_array_code(x)
        reads[str(x.dtype.itemsize)] = Case(f"read:{name}", f"one read of {rep.fmt_bytes(x.nbytes)} ({threads} threads)",
                                            lambda x=x, code=code: best.read_array(x, code), nbytes=x.nbytes,
                                            group="read")
    one = _cpu.CpuEngine(threads=1, isa="")
    f32 = data["float32"]
    reads["4/1t"] = Case("read:float32:1t", f"one read of {rep.fmt_bytes(f32.nbytes)} (1 thread)",
                         lambda: one.read_array(f32, _input.plain_array_code(f32)), nbytes=f32.nbytes, group="read")
    small = data["float32"][:SMALL_N].copy()
    rng = np.random.default_rng(SEED + 1)
    many = [rng.standard_normal(SMALL_N).astype(np.float32) for _ in range(MANY)]

    def numpy_loop() -> None:
        for t in many:
            t.min()
            t.max()

    for isa in isas:
        for name, x in data.items():
            common = dict(nbytes=x.nbytes, values=x.size, isa=isa, group=isa)
            if name == "float32":
                for k in (30, 1000):
                    cases.append(Case(f"{isa}:v2:{name}:k{k}", f"v2 float32, k = {k}",
                                      lambda x=x, k=k: histgpu.compute(x, k), reads=2, **common))
                    cases.append(Case(f"{isa}:v2:{name}:k{k}:1t", f"v2 float32, k = {k}, 1 thread",
                                      lambda x=x, k=k: histgpu.compute(x, k, num_threads=1), reads=2, **common))
                cases.append(Case(f"{isa}:v1:{name}", "v1 float32 (exact sums)", lambda x=x: histgpu.compute_v1(x),
                                  reads=1, **common))
                cases.append(Case(f"{isa}:v1:{name}:1t", "v1 float32, 1 thread",
                                  lambda x=x: histgpu.compute_v1(x, num_threads=1), reads=1, **common))
            elif name == "float64":
                cases.append(Case(f"{isa}:v2:{name}:k30", "v2 float64, k = 30", lambda x=x: histgpu.compute(x, 30),
                                  reads=2, **common))
            else:
                path = "raw-pattern path"
                cases.append(Case(f"{isa}:v2:{name}:k30", f"v2 {name}, k = 30 ({path})",
                                  lambda x=x: histgpu.compute(x, 30), reads=1, **common))
                cases.append(Case(f"{isa}:v1:{name}", f"v1 {name} ({path})", lambda x=x: histgpu.compute_v1(x),
                                  reads=1, **common))
        cases.append(Case(f"{isa}:small:compute", f"{isa}: histgpu.compute, {SMALL_N:,} values",
                          lambda: histgpu.compute(small), calls=2000, isa=isa, group="small"))
        cases.append(Case(f"{isa}:small:histogram", f"{isa}: histgpu.histogram, {SMALL_N:,} values",
                          lambda: histgpu.histogram(small), calls=2000, isa=isa, group="small"))
        cases.append(Case(f"{isa}:many", f"{isa}: histgpu.histogram_many, {MANY} × {SMALL_N:,} values",
                          lambda: histgpu.histogram_many(many), calls=20, isa=isa, group="small"))
    cases.append(Case("numpy:small", f"numpy a.min(), a.max(), {SMALL_N:,} values",
                      lambda: (small.min(), small.max()), calls=2000, group="small"))
    cases.append(Case("numpy:many", f"Python loop of numpy min + max, {MANY} tensors", numpy_loop, calls=20,
                      group="small"))
    return cases + list(reads.values()), reads


def _ceiling(c: Case, reads: Dict[str, Case]) -> Optional[float]:
    """Seconds of c's ceiling: its reads of its data at the measured read bandwidth."""
    if not c.reads:
        return None
    r = reads.get(str(c.nbytes // max(c.values, 1)), reads["4"])  # the read of the same item size, else float32's
    return c.reads * c.nbytes * (r.median / r.nbytes)


def _goals(res: Dict[str, Case], reads: Dict[str, Case], isas: Sequence[str]) -> List[List[str]]:
    rows = []

    def frac(key: str) -> Optional[float]:
        c = res.get(key)
        ceil = _ceiling(c, reads) if c else None
        return ceil / c.median if c and ceil else None

    def row(goal: str, value: Optional[float], target: float, fmt: str, higher: bool = True) -> None:
        if value is None:
            rows.append([goal, "-", "-"])
            return
        ok = value >= target if higher else value <= target
        rows.append([goal, fmt.format(value), "met" if ok else "**not met**"])

    for isa in isas:
        row(f"{isa}: v2 float32 k=30 ≥ 0.80 of two reads", frac(f"{isa}:v2:float32:k30"), 0.80, "{:.2f}")
        row(f"{isa}: v2 float32 k=1000 ≥ 0.60 of two reads", frac(f"{isa}:v2:float32:k1000"), 0.60, "{:.2f}")
        row(f"{isa}: v1 float32 ≥ 0.33 of one read (moonshot 0.50)", frac(f"{isa}:v1:float32"), 0.33, "{:.2f}")
        f32_v2, f32_v1 = res[f"{isa}:v2:float32:k30"], res[f"{isa}:v1:float32"]
        for name in ("bfloat16", "float16"):
            row(f"{isa}: {name} v2 values/s ≥ float32's (ratio)", f32_v2.median / res[f"{isa}:v2:{name}:k30"].median,
                1.0, "{:.2f}×")
            row(f"{isa}: {name} v1 values/s ≥ float32's (ratio)", f32_v1.median / res[f"{isa}:v1:{name}"].median,
                1.0, "{:.2f}×")
        row(f"{isa}: 2 threads ≥ 1.7 × 1 thread (v2 float32 k=30)",
            res[f"{isa}:v2:float32:k30:1t"].median / res[f"{isa}:v2:float32:k30"].median, 1.7, "{:.2f}×")
        row(f"{isa}: 2 threads ≥ 1.7 × 1 thread (v1 float32)",
            res[f"{isa}:v1:float32:1t"].median / res[f"{isa}:v1:float32"].median, 1.7, "{:.2f}×")
        row(f"{isa}: one compute() on 1,000 values ≤ 3 × numpy min, max",
            res[f"{isa}:small:compute"].median / res["numpy:small"].median, 3.0, "{:.2f}×", higher=False)
        row(f"{isa}: one histogram() on 1,000 values ≤ 3 × numpy min, max",
            res[f"{isa}:small:histogram"].median / res["numpy:small"].median, 3.0, "{:.2f}×", higher=False)
        row(f"{isa}: histogram_many of 400 ≤ 1.5 × numpy loop",
            res[f"{isa}:many"].median / res["numpy:many"].median, 1.5, "{:.2f}×", higher=False)
    return rows


def run(ctx: Context) -> Dict[str, Any]:
    """Run the scenario; write its markdown and JSON; return a summary for the index."""
    from histgpu import _cpu, _options

    clock = rep.ScenarioClock()
    n = int((ctx.option("sizes") or [N_FULL if ctx.full else N_REDUCED])[-1])
    rounds = ROUNDS_FULL if ctx.full else ROUNDS_REDUCED
    isas = [i for i in ("avx2", "avx512") if i in _cpu.supported_isas()] or ["baseline"]
    threads = _options.default_num_threads()
    saved_isa = os.environ.get("HISTGPU_CPU_ISA")
    cases, reads = build_cases(n, isas, threads)
    try:
        for c in cases:  # warm-up: pools, caches, first-touch of the data
            c.measure()
            c.times.clear()
        for r in range(rounds):
            for c in cases:
                c.measure()
            ctx.progress(NAME, f"round {r + 1}/{rounds} done")
    finally:
        if saved_isa is None:
            os.environ.pop("HISTGPU_CPU_ISA", None)
        else:
            os.environ["HISTGPU_CPU_ISA"] = saved_isa
    clock.stop()
    res = {c.key: c for c in cases}
    flags = _cpu_flags()
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{NAME}{ctx.suffix}"
    payload = {
        "scenario": NAME, "full": ctx.full, "clock": clock.as_dict(), "machine": ctx.info, "n": n, "rounds": rounds,
        "threads": threads, "isas": isas, "cpu_has_avx512": "avx512f" in flags,
        "cases": [{"key": c.key, "label": c.label, "isa": c.isa, "reads": c.reads, "bytes": c.nbytes, "values": c.values,
                   "median_s": c.median, "best_s": c.best, "times": c.times,
                   "fraction_of_ceiling": (_ceiling(c, reads) or 0) / c.median if c.reads else None}
                  for c in cases],
        "goals": _goals(res, reads, isas),
    }
    rep.write_json(out / f"{stem}.json", payload)
    text = render(res, reads, isas, n, rounds, threads, flags, ctx, clock)
    (out / f"{stem}.md").write_text(text)
    return {"name": NAME, "title": TITLE, "markdown": f"{stem}.md", "plots": [],
            "written": [f"{stem}.md", f"{stem}.json"], "headline": _headline(res, reads, isas), "seconds": clock.seconds}


def _headline(res: Dict[str, Case], reads: Dict[str, Case], isas: Sequence[str]) -> List[str]:
    lines = ["Fraction of the read ceiling measured in the same run (1.00 = the memory limit):", ""]
    rows = []
    for key_tail, label in (("v2:float32:k30", "v2 float32, k = 30"), ("v2:float32:k1000", "v2 float32, k = 1000"),
                            ("v1:float32", "v1 float32"), ("v2:bfloat16:k30", "v2 bfloat16 (raw patterns)"),
                            ("v1:bfloat16", "v1 bfloat16 (raw patterns)")):
        cells = []
        for isa in isas:
            c = res[f"{isa}:{key_tail}"]
            cells.append(f"{_ceiling(c, reads) / c.median:.2f}")
        rows.append([label] + cells)
    lines += rep.table(["case"] + list(isas), rows, "l" + "r" * len(isas))
    lines.append("")
    return lines


def render(res: Dict[str, Case], reads: Dict[str, Case], isas: Sequence[str], n: int, rounds: int, threads: int,
           flags: Sequence[str], ctx: Context, clock: rep.ScenarioClock) -> str:
    lines = rep.header(TITLE, ctx.info, clock, ctx.command)
    has512 = "avx512f" in flags
    lines += [
        f"{rep.fmt_n(n)} standard-normal values (seed {SEED}) per dtype; {threads} threads by default; {rounds} "
        "interleaved rounds (every case once per round), medians over the rounds, the best round beside them.",
        "",
        "Instruction sets measured: " + ", ".join(isas) + " (chosen per call with `HISTGPU_CPU_ISA`)."
        + (" **This CPU has AVX-512: the AVX2 rows are the AVX2 build run on it, not an AVX2-only CPU.**" if has512
           and "avx2" in isas else ""),
        "",
        "**Roofline** = the case's ceiling time / its median time, where the ceiling is the number of reads the "
        "algorithm needs (two for v2 of 32- and 64-bit data: the range, then the counts; one for v1 and for the "
        "raw-pattern path of 8/16-bit data) times the time of one read of the same bytes measured in this run.",
        "",
        "## Read ceiling",
        "",
    ]
    rows = [[c.label, rep.fmt_time(c.median), rep.fmt_time(c.best), rep.fmt_rate(c.nbytes / c.median / 1e9),
             rep.fmt_rate(c.nbytes / c.best / 1e9)] for c in reads.values()]
    lines += rep.table(["read", "median", "best", "GB/s (median)", "GB/s (best)"], rows, "lrrrr")
    lines.append("")
    for isa in isas:
        lines += [f"## {isa}", ""]
        rows = []
        for c in (c for c in res.values() if c.group == isa):
            ceil = _ceiling(c, reads)
            rows.append([c.label, rep.fmt_time(c.median), rep.fmt_time(c.best), rep.fmt_rate(c.nbytes / c.median / 1e9),
                         f"{c.values / c.median / 1e9:.2f}", f"{c.reads}", f"{ceil / c.median:.2f}"])
        lines += rep.table(["case", "median", "best", "GB/s", "G values/s", "reads in ceiling", "roofline"], rows,
                           "lrrrrrr")
        lines.append("")
    lines += ["## Small tensors", ""]
    rows = [[c.label, rep.fmt_time(c.median), rep.fmt_time(c.best)] for c in res.values() if c.group == "small"]
    lines += rep.table(["call", "median", "best"], rows, "lrr")
    lines += ["", "## Goals (the CPU performance issue)", ""]
    lines += rep.table(["goal", "this run", ""], _goals(res, reads, isas), "lrl")
    lines += [
        "",
        "## Notes",
        "",
        "- The machine is shared: see the load average above. A 2-thread case waits for its slower half only "
        "where a chunk is in flight (work is handed out in chunks), but with another process on one of two cores "
        "the second thread simply has no core to run on.",
        "- One read = every default thread reading its part of the data once with the widest loads the CPU has "
        "(`CpuEngine.read_array`, the best kernel build), through the same thread pool and chunking as the "
        "histogram passes.",
        "",
    ]
    return "\n".join(lines)
