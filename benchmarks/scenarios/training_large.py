"""Large models: the time one histogram logging step adds, against the parameter count.

A transformer's parameter set (no training: a logging step's cost does not depend on the values
changing): token embeddings and an output head (``vocab × width``), and per layer the
attention's q/k/v/o matrices (``width × width``) and biases, the MLP's up/down matrices
(``4·width × width``) and biases, two LayerNorms (weight, bias), plus a final LayerNorm —
``16·layers + 4`` tensors, most of them small. The full sweep's largest model has 1.15e8
parameters in 2,004 tensors (width 256, vocabulary 32,000, 125 layers); the reduced default
uses a vocabulary of 8,000 and up to 24 layers. Every model in float32 and in bfloat16.

Variants (each in its own process, the models in increasing size):

* histgpu: ``SummaryWriter.add_histograms`` + ``flush`` on torch tensors, PyTorch's layout
  (``bins="tensorflow"``) and ``layout="v2"``; ``histgpu.summary.histograms`` of ``tf.Variable``
  objects into a ``tf.summary`` writer + ``flush``; ``HistogramCallback.on_epoch_end`` of a Keras
  model holding the same weights.
* peers: PyTorch's ``add_histogram`` loop, tensorboardX's, Keras' ``TensorBoard(histogram_freq=1)``
  (``on_epoch_end``; skipped where its ``n × 30`` float64 one-hot of the largest tensor would not
  fit the memory cap).

Each logging step is followed by one threaded read of the same parameters (training_common),
the reference of the ratios.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

from benchmarks import _report as rep
from benchmarks._context import Context
from benchmarks._measure import PeakMemory, mem_available_bytes, release_memory
from benchmarks._runner import run_method
from benchmarks.scenarios import training_common as tc

NAME = "training_large"
TITLE = "Large models: the time a histogram logging step adds, by parameter count"

WIDTH = 256
VOCAB_FULL, LAYERS_FULL = 32_000, (8, 32, 125)  # 2.3e7 .. 1.15e8 parameters, 132 .. 2,004 tensors
VOCAB_REDUCED, LAYERS_REDUCED = 8_000, (2, 8, 24)
DTYPES = ("float32", "bfloat16")
STEPS_REDUCED, STEPS_FULL = 3, 5  # logging steps per model; the first is a warm-up
KERAS_TB_K = 30


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    modules: Tuple[str, ...]
    histgpu: bool


VARIANTS: Dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("histgpu_writer", "histgpu SummaryWriter.add_histograms (PyTorch's layout)", ("torch", "histgpu"), True),
        Variant("histgpu_writer_v2", "histgpu SummaryWriter.add_histograms, layout='v2'", ("torch", "histgpu"), True),
        Variant("histgpu_summary", "histgpu.summary.histograms (TF's writer)", ("tensorflow", "histgpu"), True),
        Variant("histgpu_keras", "histgpu.keras.HistogramCallback", ("tensorflow", "keras", "histgpu"), True),
        Variant("torch_writer", "torch.utils.tensorboard add_histogram loop", ("torch", "tensorboard"), False),
        Variant("tbx_writer", "tensorboardX add_histogram loop", ("torch", "tensorboardX"), False),
        Variant("keras_tb", "Keras TensorBoard(histogram_freq=1)", ("tensorflow", "keras"), False),
    )
}


def model_spec(vocab: int, width: int, layers: int) -> List[Tuple[str, Tuple[int, ...], str]]:
    """``(name, shape, kind)`` of every parameter; kind sets its values (embed, matrix, bias, norm)."""
    spec: List[Tuple[str, Tuple[int, ...], str]] = [("embed.weight", (vocab, width), "embed")]
    for i in range(layers):
        p = f"layers.{i}."
        for m in "qkvo":
            spec += [(p + f"attn.{m}.weight", (width, width), "matrix"), (p + f"attn.{m}.bias", (width,), "bias")]
        spec += [(p + "mlp.up.weight", (4 * width, width), "matrix"), (p + "mlp.up.bias", (4 * width,), "bias"),
                 (p + "mlp.down.weight", (width, 4 * width), "matrix"), (p + "mlp.down.bias", (width,), "bias")]
        for n in ("norm1", "norm2"):
            spec += [(p + f"{n}.weight", (width,), "norm"), (p + f"{n}.bias", (width,), "bias")]
    spec += [("final_norm.weight", (width,), "norm"), ("final_norm.bias", (width,), "bias"),
             ("head.weight", (vocab, width), "embed")]
    return spec


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def cases(full: bool, layers: Sequence[int] = ()) -> List[Dict[str, Any]]:
    """The models: every layer count (default: the sweep's) in every dtype."""
    vocab, layer_counts = (VOCAB_FULL, LAYERS_FULL) if full else (VOCAB_REDUCED, LAYERS_REDUCED)
    layer_counts = tuple(layers) or layer_counts
    out = []
    for dtype in DTYPES:
        for layers in layer_counts:
            spec = model_spec(vocab, WIDTH, layers)
            out.append({"id": f"{dtype}-{layers}", "dtype": dtype, "vocab": vocab, "width": WIDTH, "layers": layers,
                        "params": sum(_numel(s) for _, s, _ in spec), "tensors": len(spec),
                        "largest": max(_numel(s) for _, s, _ in spec)})
    return out


# ------------------------------------------------------------------------------ in the worker


def _arrays(case: Dict[str, Any]) -> List[Tuple[str, Any]]:
    """The parameters as numpy arrays of the case's dtype (bfloat16 through ml_dtypes)."""
    import ml_dtypes
    import numpy as np

    rng = np.random.default_rng(int(case["layers"]))
    dtype = np.dtype(ml_dtypes.bfloat16) if case["dtype"] == "bfloat16" else np.dtype(np.float32)
    out = []
    for name, shape, kind in model_spec(case["vocab"], case["width"], case["layers"]):
        if kind == "norm":
            x = 1.0 + 0.02 * rng.standard_normal(shape, dtype=np.float32)
        elif kind == "bias":
            x = 0.01 * rng.standard_normal(shape, dtype=np.float32)
        else:
            scale = 0.02 if kind == "embed" else 1.0 / np.sqrt(shape[-1])
            x = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        out.append((name, x.astype(dtype)))
    return out


def _torch_tensors(named: List[Tuple[str, Any]]) -> List[Tuple[str, Any]]:
    import numpy as np
    import torch

    out = []
    for name, a in named:
        if a.dtype.name == "bfloat16":
            out.append((name, torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)))
        else:
            out.append((name, torch.from_numpy(a)))
    return out


def _keras_model(named: List[Tuple[str, Any]], layers: int) -> Any:
    """A Keras model whose layers hold the parameters (one layer per block), values assigned."""
    import keras

    class Holder(keras.layers.Layer):
        def __init__(self, specs: List[Tuple[str, Tuple[int, ...], str]], **kw: Any):
            super().__init__(**kw)
            self.specs = specs

        def build(self, input_shape: Any) -> None:
            for wname, shape, dtype in self.specs:
                self.add_weight(name=wname, shape=shape, initializer="zeros", dtype=dtype, trainable=True)

        def call(self, x: Any) -> Any:
            return x

    groups: Dict[str, List[Tuple[str, Any]]] = {}
    for name, a in named:
        block = name.split(".attn.")[0].split(".mlp.")[0].split(".norm")[0] if name.startswith("layers.") else "outer"
        groups.setdefault(block.replace(".", "_"), []).append((name, a))
    blocks = [Holder([(n.rsplit(".", 2)[-2] + "_" + n.rsplit(".", 1)[-1] if n.startswith("layers.") else n.replace(".", "_"),
                       a.shape, a.dtype.name) for n, a in items], name=g) for g, items in groups.items()]
    model = keras.Sequential([keras.Input((1,))] + blocks)
    for block, items in zip(blocks, groups.values()):
        for w, (_, a) in zip(block.weights, items):
            w.assign(a)
    return model


def _logger(variant: str, case: Dict[str, Any], named: List[Tuple[str, Any]], logdir: str
            ) -> Tuple[Callable[[int], None], List[Any], Callable[[], None]]:
    """(one logging step, arrays the reference read reads, close) of `variant`."""
    import numpy as np

    if variant in ("histgpu_writer", "histgpu_writer_v2", "torch_writer", "tbx_writer"):
        tensors = _torch_tensors(named)
        if variant == "torch_writer":
            from torch.utils.tensorboard import SummaryWriter as W
        elif variant == "tbx_writer":
            from tensorboardX import SummaryWriter as W  # type: ignore[no-redef]
        else:
            from histgpu.writer import SummaryWriter as W  # type: ignore[no-redef]
        writer = W(logdir)

        def log(step: int) -> None:
            if variant == "histgpu_writer":
                writer.add_histograms(tensors, step)
            elif variant == "histgpu_writer_v2":
                writer.add_histograms(tensors, step, layout="v2")
            else:
                for name, t in tensors:
                    writer.add_histogram(name, t, step)
            writer.flush()

        return log, tc.torch_arrays([t for _, t in tensors]), writer.close
    import tensorflow as tf

    if variant == "histgpu_summary":
        import histgpu.summary as hs

        variables = [(name, tf.Variable(a)) for name, a in named]
        writer = tf.summary.create_file_writer(logdir)

        def log(step: int) -> None:
            with writer.as_default():
                hs.histograms(variables, step)
            writer.flush()

        arrays = [np.asarray(tf.convert_to_tensor(v).__array__()) for _, v in variables]
        return log, arrays, writer.close
    model = _keras_model(named, int(case["layers"]))
    if variant == "histgpu_keras":
        from histgpu.keras import HistogramCallback

        cb = HistogramCallback(logdir, histogram_freq=1, write_graph=False, profile_batch=0)
    else:
        cb = tf.keras.callbacks.TensorBoard(logdir, histogram_freq=1, write_graph=False, profile_batch=0)
    cb.set_model(model)
    cb.on_train_begin()

    def log(step: int) -> None:
        cb.on_epoch_begin(step)
        cb.on_epoch_end(step)  # no logs: histograms only

    arrays = [np.asarray(tf.convert_to_tensor(w.value).__array__()) for w in model.weights]
    return log, arrays, lambda: cb.on_train_end()


def _run_case(variant: str, case: Dict[str, Any], steps: int) -> Dict[str, Any]:
    named = _arrays(case)
    with tempfile.TemporaryDirectory(prefix="histgpu-bench-large-") as logdir:
        log, arrays, close = _logger(variant, case, named, logdir)
        del named
        reader = tc.Reader(arrays)
        log_times: List[float] = []
        read_times: List[float] = []
        chunked: List[float] = []
        phases: List[Dict[str, float]] = []
        peaks: List[int] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in range(steps):
                release_memory()
                with PeakMemory() as pm, tc.profiled(VARIANTS[variant].histgpu) as prof:
                    t = time.perf_counter()
                    log(step)
                    log_times.append(time.perf_counter() - t)
                peaks.append(pm.extra_bytes)
                phases.append(prof)
                read_times.append(reader())
                chunked.append(reader.chunked())
        close()
        reader.close()
    nbytes = case["params"] * (2 if case["dtype"] == "bfloat16" else 4)
    res = tc.summarize(log_times, read_times, phases, peaks, [], case["params"], case["tensors"], nbytes, chunked)
    res["read_ratio"] = res["median_s"] / res["read_s"] if res.get("read_s") else None
    res["chunked_ratio"] = res["median_s"] / res["chunked_read_s"] if res.get("chunked_read_s") else None
    return res


def run_worker(variant: str, cases_: List[Dict[str, Any]], settings: Dict[str, Any],
               emit: Callable[[Dict[str, Any]], None]) -> None:
    """Run one variant's cases (see :mod:`benchmarks._worker`)."""
    for case in cases_:
        emit({"event": "start", "id": case["id"]})
        try:
            res = _run_case(variant, case, int(settings["steps"]))
        except Exception as e:  # noqa: BLE001 - a failure is a result
            msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            res = {"status": "failed", "note": f"failed: {msg}"}
        emit({"event": "result", "id": case["id"], **res})


# ------------------------------------------------------------------------------ in the parent


def _missing(v: Variant) -> List[str]:
    out = []
    for mod in v.modules:
        try:
            if importlib.util.find_spec(mod) is None:
                out.append(mod)
        except (ImportError, ValueError):
            out.append(mod)
    return out


def _mem_cap(ctx: Context) -> float:
    cap = ctx.option("mem_cap_gib")
    if cap is not None:
        return float(cap) * 2**30
    avail = mem_available_bytes() or 8 * 2**30
    return min(avail / 2, 8 * 2**30)


def run(ctx: Context) -> Dict[str, Any]:
    """Run every variant over every model; write ``training_large.md``/``.json``/``.png``."""
    clock = rep.ScenarioClock()
    names = [n for n in (ctx.option("variants") or list(VARIANTS)) if n in VARIANTS]
    all_cases = cases(ctx.full, ctx.option("large_layers") or ())
    dtypes = ctx.option("dtypes")
    if dtypes:
        all_cases = [c for c in all_cases if c["dtype"] in dtypes] or all_cases
    all_cases.sort(key=lambda c: (c["params"], c["dtype"]))
    steps = int(ctx.option("train_steps", STEPS_FULL if ctx.full else STEPS_REDUCED))
    cap = _mem_cap(ctx)
    results: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for i, name in enumerate(names, 1):
        v = VARIANTS[name]
        step = f"{i}/{len(names)}"
        results[name] = {}
        missing = _missing(v)
        if missing:
            for c in all_cases:
                results[name][c["id"]] = {"status": "skipped", "note": f"skipped: {', '.join(missing)} not installed"}
            ctx.progress(NAME, f"{name}: skipped ({', '.join(missing)} not installed)", step)
            continue
        todo = []
        for c in all_cases:
            need = c["largest"] * KERAS_TB_K * 8 * 2  # the one-hot and its float64 copy of the values
            if name == "keras_tb" and need > cap:
                results[name][c["id"]] = {"status": "skipped",
                                          "note": f"skipped: would need {need / 2**30:.1f} GiB (cap {cap / 2**30:.1f})"}
            else:
                todo.append(c)
        ctx.progress(NAME, f"{name}: {v.label}, {len(todo)} models ...", step)

        def record(c: Dict[str, Any], res: Dict[str, Any], name: str = name, step: str = step) -> None:
            results[name][c["id"]] = res
            text = res.get("note") or (f"{c['id']}: {rep.fmt_time(res['median_s'])} per step, "
                                        f"{rep.fmt_ratio(res.get('read_ratio'))} one read")
            ctx.progress(NAME, f"{name} {c['id']} ({c['params']:,} params, {c['tensors']} tensors): {text}", step)

        if todo:
            run_method(NAME, name, todo, {"startup_timeout_s": 300, "steps": steps},
                       case_timeout_s=lambda c: 1800.0, on_result=record)
    clock.stop()
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{NAME}{ctx.suffix}"
    rep.write_json(out / f"{stem}.json", {"scenario": NAME, "full": ctx.full, "clock": clock.as_dict(),
                                          "machine": ctx.info, "cases": all_cases, "steps": steps,
                                          "results": results})
    plots = plot(results, all_cases, out, stem) if ctx.option("plots", True) else []
    text = render(results, all_cases, steps, ctx, clock, plots)
    (out / f"{stem}.md").write_text(text)
    return {"name": NAME, "title": TITLE, "markdown": f"{stem}.md", "plots": plots,
            "written": [f"{stem}.md", f"{stem}.json"] + plots,
            "headline": table_lines(results, all_cases), "seconds": clock.seconds}


def _cell(res: Dict[str, Any]) -> str:
    if not res:
        return "-"
    if res.get("status") != "ok":
        return res.get("note", res.get("status", "?")).replace("skipped: ", "").replace("failed: ", "failed: ")[:60]
    return f"{rep.fmt_time(res['median_s'])} ({rep.fmt_ratio(res.get('read_ratio'))})"


def table_lines(results: Dict[str, Dict[str, Dict[str, Any]]], all_cases: List[Dict[str, Any]]) -> List[str]:
    lines: List[str] = []
    for dtype in DTYPES:
        cs = [c for c in all_cases if c["dtype"] == dtype]
        if not cs:
            continue
        head = ["variant"] + [f"{c['params'] / 1e6:.1f}M params, {c['tensors']} tensors" for c in cs]
        rows = []
        read_row = ["one threaded read (reference, median over variants)"]
        for c in cs:
            reads = [r[c["id"]]["read_s"] for r in results.values()
                     if r.get(c["id"], {}).get("status") == "ok" and r[c["id"]].get("read_s")]
            read_row.append(rep.fmt_time(statistics.median(reads)) if reads else "-")
        for name, per in results.items():
            label = f"**{VARIANTS[name].label}**" if VARIANTS[name].histgpu else VARIANTS[name].label
            rows.append([label] + [_cell(per.get(c["id"], {})) for c in cs])
        lines += [f"**{dtype}** — time a logging step adds (median), in brackets: × one read of the same "
                  "parameters in the same process", ""]
        lines += rep.table(head, rows + [read_row]) + [""]
    return lines


def render(results: Dict[str, Dict[str, Dict[str, Any]]], all_cases: List[Dict[str, Any]], steps: int,
           ctx: Context, clock: rep.ScenarioClock, plots: Sequence[str]) -> str:
    lines = rep.header(TITLE, ctx.info, clock, ctx.command)
    big = max(all_cases, key=lambda c: c["params"]) if all_cases else None
    lines += [
        f"Models: a transformer's parameters, width {WIDTH}, vocabulary {all_cases[0]['vocab'] if all_cases else '-'}, "
        f"{', '.join(str(c) for c in sorted({c['layers'] for c in all_cases}))} layers (16 tensors per layer: "
        "attention q/k/v/o matrices and biases, MLP up/down matrices and biases, two LayerNorms; plus embeddings, "
        "a final LayerNorm and the output head)"
        + (f"; the largest {big['params']:,} parameters in {big['tensors']:,} tensors" if big else "")
        + ". float32 and bfloat16.",
        "",
        f"{steps} logging steps per model, the first a warm-up; median of the rest. Each logging step is "
        "followed by one threaded read of the same parameters (`np.max` of every tensor over one thread per "
        "core; bfloat16 read as its uint16 bytes) in the same process: the ratio in brackets. histgpu's writer "
        "variants and the peers log torch tensors (PyTorch's writer converts bfloat16 to float16 first); "
        "`histgpu.summary.histograms` logs `tf.Variable`s into a `tf.summary` writer; the callbacks' "
        "`on_epoch_end` runs on a Keras model holding the same weights (no epoch scalars).",
        "",
    ]
    lines += table_lines(results, all_cases)
    for p in plots:
        lines += [f"![{p}]({p})", ""]
    labels = {n: VARIANTS[n].label for n in results}
    prof_rows = []
    for c in ([big] if big else []):
        for dtype in DTYPES:
            cid = f"{dtype}-{c['layers']}"
            per = {n: r.get(cid, {}) for n, r in results.items()}
            for row in tc.profile_rows(per, labels):
                prof_rows.append([f"{row[0]} ({dtype})"] + row[1:])
    if prof_rows:
        lines += [f"## Where the time goes: the largest model ({big['params']:,} parameters, {big['tensors']:,} tensors)",
                  "", "histgpu's profile of a logging step (`histgpu._batch.PROFILE`, medians; see training.md).", ""]
        lines += rep.table(tc.PROFILE_HEAD, prof_rows) + [""]
    failed = [(n, cid, r.get("note")) for n, per in results.items() for cid, r in per.items()
              if r.get("status") == "failed"]
    if failed:
        lines += ["## Failures", ""] + [f"- {VARIANTS[n].label}, {cid}: {note}" for n, cid, note in failed] + [""]
    return "\n".join(lines)


def plot(results: Dict[str, Dict[str, Dict[str, Any]]], all_cases: List[Dict[str, Any]], out: Path,
         stem: str) -> List[str]:
    plt = rep.pyplot()
    if plt is None or not all_cases:
        return []
    dtypes = [d for d in DTYPES if any(c["dtype"] == d for c in all_cases)]
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.2 * len(dtypes), 4.6), squeeze=False, sharey=True)
    colors = {"histgpu_writer": "#1a9850", "histgpu_writer_v2": "#66bd63", "histgpu_summary": "#006837",
              "histgpu_keras": "#a6d96a", "torch_writer": "#d73027", "tbx_writer": "#f46d43", "keras_tb": "#762a83"}
    for ax, dtype in zip(axes[0], dtypes):
        cs = sorted((c for c in all_cases if c["dtype"] == dtype), key=lambda c: c["params"])
        reads: List[Tuple[int, float]] = []
        for name, per in results.items():
            pts = [(c["params"], per[c["id"]]["median_s"]) for c in cs if per.get(c["id"], {}).get("status") == "ok"]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=colors.get(name), label=VARIANTS[name].label,
                        linewidth=2.2 if VARIANTS[name].histgpu else 1.4)
            for c in cs:
                r = per.get(c["id"], {})
                if r.get("status") == "ok" and r.get("read_s"):
                    reads.append((c["params"], r["read_s"]))
        if reads:
            by: Dict[int, List[float]] = {}
            for p, r in reads:
                by.setdefault(p, []).append(r)
            xs = sorted(by)
            ax.plot(xs, [statistics.median(by[x]) for x in xs], "k--", marker="x", label="one threaded read (reference)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters")
        ax.set_title(dtype, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("seconds added per logging step")
    handles: Dict[str, Any] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    axes[0][0].legend(list(handles.values()), list(handles), fontsize=7, loc="upper left")
    fig.suptitle("Time a histogram logging step adds (log-log; lower is better)", fontsize=10)
    fig.tight_layout()
    name = f"{stem}.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return [name]
