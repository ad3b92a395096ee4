"""Training-overhead scenario: the time one histogram logging step adds to training.

A model of about 2e7 parameters in about 400 weight tensors (``blocks`` × [Dense/Linear
``width``×``width`` + bias + LayerNorm gamma/beta], plus an output layer) is trained on random
data; every variant runs in its own process:

* Keras: ``model.fit`` with ``tf.keras.callbacks.TensorBoard(histogram_freq=0)`` (the cost of
  the epoch-end logging without histograms), ``TensorBoard(histogram_freq=1)`` and
  ``histgpu.keras.HistogramCallback(histogram_freq=1)`` (also with ``gradients=True``). The
  callback's ``on_epoch_end`` — where histograms are written, one logging step per epoch — is
  timed inside the real ``fit``; the first epoch is a warm-up.
* PyTorch style: after each optimizer step, ``add_histogram(name, p, step)`` for every
  parameter with PyTorch's ``torch.utils.tensorboard.SummaryWriter`` (tensorboardX's when
  PyTorch is missing; the model is then numpy arrays of the same shapes), with tensorboardX,
  and with ``histgpu.writer.SummaryWriter`` (``add_histograms`` in one call, v1 and v2, and the
  same ``add_histogram`` loop).
* Keras-style code with TensorFlow's writer, after each ``train_on_batch``:
  ``histgpu.summary.histograms`` of every weight in one call, and a ``histgpu.summary.histogram``
  loop.

Per variant: median time of a logging step, its ratio to one threaded read of the same
parameters (``training_common.Reader``, measured in the same process after each logging step:
the goals of issue 14), histgpu's profile of the step, the extra peak memory of a step, and the
time of a training step for scale. A variant that fails (out of memory, missing library) is a
result.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks import _report as rep
from benchmarks._context import Context
from benchmarks._measure import PeakMemory, release_memory
from benchmarks._runner import run_method
from benchmarks.scenarios import training_common as tc

NAME = "training"
TITLE = "Training overhead: the time a histogram logging step adds"

WIDTH = 448
BLOCKS = 99  # 99 × (448² + 3 × 448) + 449 = 20,003,201 parameters in 398 tensors
STEPS_REDUCED = 4  # logging steps; the first is a warm-up
STEPS_FULL = 11
BATCH = 32
TRAIN_STEPS_PER_EPOCH = 2


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    family: str  # "keras" or "pytorch"
    modules: Tuple[str, ...]
    baseline: Optional[str]  # histgpu variant it is compared with
    note: str = ""


VARIANTS: Dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("keras_no_hist", "Keras TensorBoard(histogram_freq=0): no histograms", "keras",
                ("tensorflow", "keras"), None),
        Variant("keras_tb", "Keras TensorBoard(histogram_freq=1)", "keras", ("tensorflow", "keras"),
                "histgpu_keras"),
        Variant("histgpu_keras", "histgpu.keras.HistogramCallback(histogram_freq=1)", "keras",
                ("tensorflow", "keras", "histgpu"), None),
        Variant("histgpu_keras_grads", "histgpu HistogramCallback(histogram_freq=1, gradients=True)", "keras",
                ("tensorflow", "keras", "histgpu"), None, "weights and gradients: twice the histograms"),
        Variant("torch_writer", "torch.utils.tensorboard add_histogram loop", "pytorch",
                ("torch", "tensorboard"), "histgpu_writer"),
        Variant("tbx_writer", "tensorboardX add_histogram loop", "pytorch", ("tensorboardX",), "histgpu_writer"),
        Variant("histgpu_writer", "histgpu SummaryWriter.add_histograms", "pytorch", ("histgpu", "tensorboard"),
                None),
        Variant("histgpu_writer_v2", "histgpu SummaryWriter.add_histograms, layout='v2'", "pytorch",
                ("histgpu", "tensorboard"), None, "TensorBoard's v2 [30, 3] tensors instead of PyTorch's protos"),
        Variant("histgpu_writer_loop", "histgpu SummaryWriter add_histogram loop", "pytorch",
                ("histgpu", "tensorboard"), None, "flushes after every call"),
        Variant("histgpu_summary", "histgpu.summary.histograms (one call, TF's writer)", "tf",
                ("tensorflow", "keras", "histgpu"), None,
                "every Keras weight in one call into a tf.summary writer, then its flush; a train_on_batch between steps"),
        Variant("histgpu_summary_loop", "histgpu.summary.histogram loop (TF's writer)", "tf",
                ("tensorflow", "keras", "histgpu"), None, "one histgpu.summary.histogram call per weight, then flush"),
    )
}

#: Issue 14's goals: (label, variant, reference, target). Reference "read" is one threaded read
#: of the same parameters in the same process; a variant name is that variant's added time.
GOALS = (
    ("SummaryWriter.add_histograms + flush, v1 (bins='tensorflow')", "histgpu_writer", "read", 2.5),
    ("SummaryWriter.add_histograms + flush, v2 (layout='v2')", "histgpu_writer_v2", "read", 2.5),
    ("HistogramCallback (Keras' runs and tags)", "histgpu_keras", "read", 3.0),
    ("HistogramCallback(gradients=True) vs its weights-only time", "histgpu_keras_grads", "histgpu_keras", 2.0),
    ("histgpu.summary.histograms (batch form)", "histgpu_summary", "read", 3.0),
)


# ------------------------------------------------------------------------------ in the worker


def _keras_model(width: int, blocks: int) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((width,))
    h = inp
    for i in range(blocks):
        h = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(h)
        h = keras.layers.LayerNormalization(name=f"norm_{i}")(h)
    out = keras.layers.Dense(1, name="head")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
    return model


def _run_keras(variant: str, case: Dict[str, Any]) -> Dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    width, blocks, steps = int(case["width"]), int(case["blocks"]), int(case["steps"])
    model = _keras_model(width, blocks)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH * TRAIN_STEPS_PER_EPOCH, width)).astype(np.float32)
    y = rng.standard_normal((BATCH * TRAIN_STEPS_PER_EPOCH, 1)).astype(np.float32)
    # The reference read: the weights' values, as arrays of the same sizes (copies made now).
    reader = tc.Reader([np.asarray(w.numpy()) for w in model.weights])
    log_times: List[float] = []
    read_times: List[float] = []
    chunked_times: List[float] = []
    phases: List[Dict[str, float]] = []
    log_peaks: List[int] = []
    epoch_times: List[float] = []
    histgpu_variant = variant.startswith("histgpu")
    with tempfile.TemporaryDirectory(prefix="histgpu-bench-train-") as logdir:
        common = dict(write_graph=False, profile_batch=0, update_freq="epoch")
        if variant == "keras_no_hist":
            cb = tf.keras.callbacks.TensorBoard(logdir, histogram_freq=0, **common)
        elif variant == "keras_tb":
            cb = tf.keras.callbacks.TensorBoard(logdir, histogram_freq=1, **common)
        else:
            from histgpu.keras import HistogramCallback

            cb = HistogramCallback(logdir, histogram_freq=1, gradients=variant == "histgpu_keras_grads", **common)
        original = cb.on_epoch_end

        def timed_epoch_end(epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            release_memory()
            with PeakMemory() as pm, tc.profiled(histgpu_variant) as prof:
                t = time.perf_counter()
                original(epoch, logs)
                log_times.append(time.perf_counter() - t)
            log_peaks.append(pm.extra_bytes)
            phases.append(prof)
            read_times.append(reader())  # after the step: outside the epoch clock and the step
            chunked_times.append(reader.chunked())

        cb.on_epoch_end = timed_epoch_end  # type: ignore[method-assign]

        class EpochClock(tf.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:  # runs before cb's (listed first)
                epoch_times.append(time.perf_counter() - self.t)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y, batch_size=BATCH, epochs=steps, verbose=0, shuffle=False,
                      callbacks=[EpochClock(), cb])
    reader.close()
    n_params = int(sum(int(np.prod(w.shape)) for w in model.weights))
    return tc.summarize(log_times, read_times, phases, log_peaks, [t / TRAIN_STEPS_PER_EPOCH for t in epoch_times],
                        n_params, len(model.weights), 4 * n_params, chunked_times)


def _run_tf(variant: str, case: Dict[str, Any]) -> Dict[str, Any]:
    """Keras-style code logging through TensorFlow's writer, after each ``train_on_batch``."""
    import numpy as np
    import tensorflow as tf

    import histgpu.summary as hsummary

    width, blocks, steps = int(case["width"]), int(case["blocks"]), int(case["steps"])
    model = _keras_model(width, blocks)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, width)).astype(np.float32)
    y = rng.standard_normal((BATCH, 1)).astype(np.float32)
    pairs = [(f"{w.path}/histogram", w) for w in model.weights]
    reader = tc.Reader([np.asarray(w.numpy()) for w in model.weights])
    log_times: List[float] = []
    read_times: List[float] = []
    chunked_times: List[float] = []
    phases: List[Dict[str, float]] = []
    log_peaks: List[int] = []
    train_times: List[float] = []
    with tempfile.TemporaryDirectory(prefix="histgpu-bench-train-") as logdir:
        writer = tf.summary.create_file_writer(logdir)
        for step in range(steps):
            t = time.perf_counter()
            model.train_on_batch(x, y)
            train_times.append(time.perf_counter() - t)
            release_memory()
            with PeakMemory() as pm, tc.profiled() as prof:
                t = time.perf_counter()
                with writer.as_default():
                    if variant == "histgpu_summary":
                        hsummary.histograms(pairs, step=step)
                    else:
                        for name, w in pairs:
                            hsummary.histogram(name, w, step=step)
                t_flush = time.perf_counter()
                writer.flush()
                done = time.perf_counter()
                log_times.append(done - t)
            if prof is not None and variant == "histgpu_summary":
                prof["TensorFlow writer"] = prof.get("TensorFlow writer", 0.0) + done - t_flush
            log_peaks.append(pm.extra_bytes)
            phases.append(prof if variant == "histgpu_summary" else {})
            read_times.append(reader())
            chunked_times.append(reader.chunked())
        writer.close()
    reader.close()
    n_params = int(sum(int(np.prod(w.shape)) for w in model.weights))
    return tc.summarize(log_times, read_times, phases, log_peaks, train_times, n_params, len(pairs), 4 * n_params,
                        chunked_times)


def _torch_model(width: int, blocks: int) -> Tuple[Any, Callable[[], None]]:
    """A PyTorch model like the Keras one, and a function doing one SGD step on random data."""
    import torch

    torch.manual_seed(0)
    layers: List[Any] = []
    for _ in range(blocks):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.LayerNorm(width)]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x, y = torch.randn(BATCH, width), torch.randn(BATCH, 1)

    def train_step() -> None:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    return model, train_step


def _numpy_model(width: int, blocks: int) -> Tuple[Any, Callable[[], None]]:
    """Without PyTorch: numpy parameters of the same shapes, nudged a little per 'step'."""
    import numpy as np

    rng = np.random.default_rng(0)
    params: Dict[str, Any] = {}
    for i in range(blocks):
        params[f"{3 * i}.weight"] = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        params[f"{3 * i}.bias"] = np.zeros(width, np.float32)
        params[f"{3 * i + 2}.weight"] = np.ones(width, np.float32)
        params[f"{3 * i + 2}.bias"] = np.zeros(width, np.float32)
    params[f"{3 * blocks}.weight"] = rng.standard_normal((1, width)).astype(np.float32)
    params[f"{3 * blocks}.bias"] = np.zeros(1, np.float32)

    def train_step() -> None:
        for p in params.values():
            p *= np.float32(1.0 - 1e-4)

    return params, train_step


def _run_pytorch(variant: str, case: Dict[str, Any]) -> Dict[str, Any]:
    width, blocks, steps = int(case["width"]), int(case["blocks"]), int(case["steps"])
    have_torch = importlib.util.find_spec("torch") is not None
    model, train_step = (_torch_model if have_torch else _numpy_model)(width, blocks)
    named: List[Tuple[str, Any]] = list(model.named_parameters() if have_torch else model.items())
    notes: List[str] = []
    with tempfile.TemporaryDirectory(prefix="histgpu-bench-train-") as logdir:
        if variant == "torch_writer" and have_torch:
            from torch.utils.tensorboard import SummaryWriter as TorchWriter

            writer = TorchWriter(logdir)
        elif variant in ("torch_writer", "tbx_writer"):
            from tensorboardX import SummaryWriter as TbxWriter

            writer = TbxWriter(logdir)
            if variant == "torch_writer":
                notes.append("PyTorch is not installed: tensorboardX's writer (the same code) stands in")
        else:
            from histgpu.writer import SummaryWriter as HgWriter

            writer = HgWriter(logdir)
            try:
                writer.add_histogram("probe", named[0][1], 0)
            except Exception as e:  # noqa: BLE001 - e.g. a tensor that requires grad
                notes.append(f"parameters passed as p.detach(): passing p raised {type(e).__name__}: "
                             + str(e).splitlines()[0][:120])
                named = [(n, p.detach()) for n, p in named]

        def log(step: int) -> None:
            if variant == "histgpu_writer":
                writer.add_histograms(named, global_step=step)
            elif variant == "histgpu_writer_v2":
                writer.add_histograms(named, global_step=step, layout="v2")
            else:
                for name, p in named:
                    writer.add_histogram(name, p, step)
            writer.flush()

        values = [p for _, p in named]
        reader = tc.Reader(tc.torch_arrays(values) if have_torch else values)
        log_times: List[float] = []
        read_times: List[float] = []
        chunked_times: List[float] = []
        phases: List[Dict[str, float]] = []
        log_peaks: List[int] = []
        train_times: List[float] = []
        batched = variant in ("histgpu_writer", "histgpu_writer_v2")
        for step in range(steps):
            t = time.perf_counter()
            train_step()
            train_times.append(time.perf_counter() - t)
            release_memory()
            with PeakMemory() as pm, tc.profiled(batched) as prof:
                t = time.perf_counter()
                log(step)
                log_times.append(time.perf_counter() - t)
            log_peaks.append(pm.extra_bytes)
            phases.append(prof)
            read_times.append(reader())
            chunked_times.append(reader.chunked())
        writer.close()
        reader.close()
    n_params = int(sum(int(p.numel() if hasattr(p, "numel") else p.size) for _, p in named))
    res = tc.summarize(log_times, read_times, phases, log_peaks, train_times, n_params, len(named), 4 * n_params,
                       chunked_times)
    res["model"] = "PyTorch nn.Sequential" if have_torch else "numpy arrays (PyTorch not installed)"
    if notes:
        res["note"] = "; ".join(notes)
    return res


def run_worker(variant: str, cases: List[Dict[str, Any]], settings: Dict[str, Any],
               emit: Callable[[Dict[str, Any]], None]) -> None:
    """Run one variant (see :mod:`benchmarks._worker`)."""
    for case in cases:
        emit({"event": "start", "id": case["id"]})
        try:
            family = VARIANTS[variant].family
            if family == "keras":
                res = _run_keras(variant, case)
            elif family == "tf":
                res = _run_tf(variant, case)
            else:
                res = _run_pytorch(variant, case)
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


def run(ctx: Context) -> Dict[str, Any]:
    """Run every variant; write ``training.md``/``.json``/``.png``; return the index summary."""
    clock = rep.ScenarioClock()
    names = ctx.option("variants") or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown training variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    case = {"width": int(ctx.option("train_width", WIDTH)), "blocks": int(ctx.option("train_blocks", BLOCKS)),
            "steps": int(ctx.option("train_steps", STEPS_FULL if ctx.full else STEPS_REDUCED))}
    results: Dict[str, Dict[str, Any]] = {}
    for i, name in enumerate(names, 1):
        v = VARIANTS[name]
        missing = _missing(v)
        if name == "torch_writer" and missing == ["torch"]:
            missing = []  # falls back to tensorboardX's writer on numpy arrays
        step = f"{i}/{len(names)}"
        if missing:
            results[name] = {"status": "skipped", "note": f"skipped: {', '.join(missing)} not installed"}
            ctx.progress(NAME, f"{name}: {results[name]['note']}", step)
            continue
        ctx.progress(NAME, f"{name}: {v.label} ...", step)

        def record(c: Dict[str, Any], res: Dict[str, Any], name: str = name, step: str = step) -> None:
            results[name] = res
            ctx.progress(NAME, f"{name}: {_progress_text(res)}", step)

        run_method(NAME, name, [{"id": name, **case}], {"startup_timeout_s": 300},
                   case_timeout_s=lambda c: 900.0, on_result=record)
    _add_overheads(results)
    clock.stop()
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"training{ctx.suffix}"
    rep.write_json(out / f"{stem}.json", {"scenario": NAME, "full": ctx.full, "clock": clock.as_dict(),
                                          "machine": ctx.info, "model": case, "results": results,
                                          "goals": goals(results)})
    plots = plot(results, out, stem) if ctx.option("plots", True) else []
    text = render(results, case, ctx, clock, plots)
    (out / f"{stem}.md").write_text(text)
    return {"name": NAME, "title": TITLE, "markdown": f"{stem}.md", "plots": plots,
            "written": [f"{stem}.md", f"{stem}.json"] + plots,
            "headline": goal_lines(goals(results), READ_NOTE) + table_lines(results), "seconds": clock.seconds}


def _progress_text(res: Dict[str, Any]) -> str:
    if res.get("status") != "ok":
        return res.get("note", res.get("status", "?"))
    return (f"logging step {rep.fmt_time(res['median_s'])} (median of {res['steps_measured']}), "
            f"extra peak {rep.fmt_bytes(res['extra_peak_bytes'])}, training step {rep.fmt_time(res['train_step_s'])}")


def _add_overheads(results: Dict[str, Dict[str, Any]]) -> None:
    """``added_s``: logging time attributable to histograms; ``ratio``: vs histgpu's counterpart;
    ``read_ratio``: added time / one threaded read of the same parameters (same process)."""
    base = results.get("keras_no_hist", {})
    base_s = base.get("median_s") if base.get("status") == "ok" else None
    for name, res in results.items():
        if res.get("status") != "ok":
            continue
        if VARIANTS[name].family == "keras":
            if name != "keras_no_hist" and base_s is not None:
                res["added_s"] = max(res["median_s"] - base_s, 0.0)
        else:
            res["added_s"] = res["median_s"]
        if res.get("added_s") is not None and res.get("read_s"):
            res["read_ratio"] = res["added_s"] / res["read_s"]
        if res.get("added_s") is not None and res.get("chunked_read_s"):
            res["chunked_ratio"] = res["added_s"] / res["chunked_read_s"]
    for name, res in results.items():
        ref = results.get(VARIANTS[name].baseline or "", {})
        if res.get("status") == "ok" and ref.get("status") == "ok":
            mine, theirs = res.get("added_s", res["median_s"]), ref.get("added_s", ref["median_s"])
            if theirs > 0:
                res["ratio"] = mine / theirs


def goals(results: Dict[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Issue 14's goals, measured: each a ratio with its target and whether it is met."""
    out = []
    for label, name, ref, target in GOALS:
        res = results.get(name, {})
        value = None
        if res.get("status") == "ok":
            if ref == "read":
                value = res.get("read_ratio")
            else:
                # Two processes minutes apart: each added time is taken relative to its own
                # process's read first, so that a change of the machine's load between them cancels.
                other = results.get(ref, {})
                if other.get("status") == "ok" and other.get("read_ratio") and res.get("read_ratio") is not None:
                    value = res["read_ratio"] / other["read_ratio"]
        out.append({"goal": label, "variant": name, "against": ref, "target": target, "value": value,
                    "met": None if value is None else value <= target})
    return out


def goal_lines(rows: List[Dict[str, Any]], ref_note: str) -> List[str]:
    body = []
    for g in rows:
        against = "one read" if g["against"] == "read" else VARIANTS[g["against"]].label
        met = "-" if g["met"] is None else ("met" if g["met"] else "**not met**")
        body.append([g["goal"], against, rep.fmt_ratio(g["value"]), f"≤ {g['target']:g}×", met])
    return rep.table(["goal", "against", "measured", "target", ""], body, "llrrl") + ["", ref_note, ""]


def table_lines(results: Dict[str, Dict[str, Any]]) -> List[str]:
    rows = []
    for name, res in results.items():
        v = VARIANTS[name]
        label = f"**{v.label}**" if name.startswith("histgpu") else v.label
        if res.get("status") != "ok":
            rows.append([label, res.get("note", res.get("status", "?")), "-", "-", "-", "-", "-", "-", "-"])
            continue
        added = res.get("added_s")
        rows.append([
            label,
            rep.fmt_time(res["median_s"]),
            rep.fmt_time(added) if added is not None else "(baseline)",
            rep.fmt_time(res.get("read_s")),
            rep.fmt_ratio(res.get("read_ratio")) if added is not None else "-",
            rep.fmt_ratio(res.get("chunked_ratio")) if added is not None else "-",
            rep.fmt_ratio(res.get("ratio")) if v.baseline else "-",
            rep.fmt_bytes(res["extra_peak_bytes"]),
            rep.fmt_time(res["train_step_s"]),
        ])
    return rep.table(["variant", "logging step (median)", "added by histograms", "one read (same process)",
                      "added / read", "added / chunked read", "histgpu is × faster", "extra peak memory",
                      "training step"], rows) + [""]


READ_NOTE = ("“One read”: `np.max` of every parameter tensor, the tensors shared out over one thread per core, "
             "measured in the same process right after each logging step (median) — the 1× of issue 14's goals. "
             "Gradients against weights only: the two callbacks' added / read ratios divided (each run is measured "
             "against its own read, so a change of load between the two processes cancels). “Chunked read”: the "
             "same memory read by one task per core, each over its share of the tensors (no per-tensor pool "
             "cost; faster, so its ratios are larger).")


def render(results: Dict[str, Dict[str, Any]], case: Dict[str, Any], ctx: Context, clock: rep.ScenarioClock,
           plots: Sequence[str]) -> str:
    ok = [r for r in results.values() if r.get("status") == "ok"]
    params = ok[0]["params"] if ok else None
    tensors = sorted({r["tensors"] for r in ok})
    models = sorted({r["model"] for r in ok if r.get("model")})
    lines = rep.header(TITLE, ctx.info, clock, ctx.command)
    lines += [
        f"Model: {case['blocks']} blocks of Dense/Linear {case['width']}×{case['width']} + ReLU + LayerNorm and an "
        f"output layer: {params:,} float32 parameters in {'/'.join(map(str, tensors))} weight tensors"
        if params else "Model: (no variant ran)",
        "",
        f"{case['steps']} logging steps per variant, the first a warm-up; median of the rest. Keras: one logging "
        f"step per epoch of {TRAIN_STEPS_PER_EPOCH} training steps (batch {BATCH}), timed around the callback's "
        "`on_epoch_end` inside `model.fit`. “Added by histograms” subtracts the epoch-end time of the callback "
        "without histograms (Keras) — the PyTorch-style and TensorFlow-writer rows are all histogram work. "
        "PyTorch-style model: " + (", ".join(models) or "-") + ".",
        "",
        "## Goals (issue 14)",
        "",
    ]
    lines += goal_lines(goals(results), READ_NOTE)
    lines += ["## Every variant", ""]
    lines += table_lines(results)
    for p in plots:
        lines += [f"![{p}]({p})", ""]
    labels = {n: VARIANTS[n].label for n in results}
    prof = tc.profile_rows(results, labels)
    if prof:
        lines += [
            "## Where the time goes (histgpu's profile of a logging step)",
            "",
            "Medians over the measured steps of the seconds histgpu spent in each phase (`histgpu._batch.PROFILE`): "
            "input conversion (classifying the tensors, reading TensorFlow variables), compute (the engines), proto "
            "building (Summary/Event bytes), checksum (CRC-32C framing), file I/O (the write), TensorFlow's writer "
            "(`write_raw_pb` and `flush`: TensorFlow serializes, checksums and writes in C++). The rest of the step "
            "is the framework's: Python around the calls, Keras' callback (its epoch scalars included), "
            "TensorFlow's op dispatch.",
            "",
        ]
        lines += rep.table(tc.PROFILE_HEAD, prof) + [""]
    notes = [f"- {VARIANTS[n].label}: {VARIANTS[n].note}" for n in results if VARIANTS[n].note]
    notes += [f"- {VARIANTS[n].label}: {r['note']}" for n, r in results.items()
              if r.get("status") == "ok" and r.get("note")]
    notes.append("- Extra peak memory: peak resident memory during one logging step minus resident memory "
                  "before it, largest over all steps including the first (TensorFlow's allocator pools memory, so "
                  "later steps reuse what the first one took; memory TF had pooled during training is not seen).")
    notes.append("- The training step is shown for scale (2 cores, batch 32): how many training steps one logging "
                  "step costs.")
    notes.append("- Each variant runs in its own process, one after another: ratios within a row (a variant and "
                  "its own read) are what the goals use; rows measured minutes apart drift with the machine's load.")
    lines += ["## Notes", ""] + notes + [""]
    return "\n".join(lines)


def plot(results: Dict[str, Dict[str, Any]], out: Path, stem: str) -> List[str]:
    plt = rep.pyplot()
    ok = [(n, r) for n, r in results.items() if r.get("status") == "ok"]
    if plt is None or not ok:
        return []
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(ok) + 1.4))
    vals = [r["median_s"] for _, r in ok]
    colors = ["#1a9850" if n.startswith("histgpu") else "gray" if VARIANTS[n].baseline is None else "#d73027"
              for n, _ in ok]
    ax.barh(range(len(ok)), vals, color=colors)
    ax.set_yticks(range(len(ok)), [VARIANTS[n].label for n, _ in ok], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds per logging step (log scale; lower is better)")
    for i, v in enumerate(vals):
        ax.text(v, i, " " + rep.fmt_time(v), va="center", fontsize=8)
    ax.set_xlim(right=max(vals) * 6)
    params = ok[0][1]["params"]
    ax.set_title(f"Histograms of {params / 1e6:.0f}M parameters in {ok[0][1]['tensors']} tensors", fontsize=10)
    fig.tight_layout()
    name = f"{stem}.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return [name]
