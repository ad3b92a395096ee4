"""histgpu.distribute under TensorFlow's real engines, read back with TensorBoard.

* MirroredStrategy over 4 logical CPU devices (one subprocess: logical devices must be
  configured before TensorFlow initialises them, which the session's ``tf`` fixture has
  already done in this process);
* MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1 (TF_CONFIG, free ports).

Each process runs tests/distribute/tf_worker.py: every scenario (uneven shards, empty shards,
NaN/Inf shards, a shard of one value, every value equal, float64, int32, ...) in replica
context inside ``tf.function``, some also eagerly and in cross-replica context. Here the
written summaries are read back with TensorBoard's EventAccumulator and compared, bit for
bit, with histgpu.histogram / histogram_proto of the whole tensor. Every process is bounded
in time and killed (its whole process group) in a ``finally``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
import pytest

from ..processes import kill_process_groups
from . import tf_worker as W

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "tf_worker.py")
TIMEOUT_S = 240  # per run; a run takes ~15 s on an idle 2-core machine

pytestmark = pytest.mark.filterwarnings("ignore::histgpu.NonFiniteWarning")


# ------------------------------------------------------------------ running the workers


def _free_ports(n: int) -> List[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run(kind: str, logdir: str, envs: List[Dict[str, str]]) -> List[Tuple[int, str, str]]:
    """Start one worker per env, wait for all (bounded), kill every process group in the end."""
    procs = []
    try:
        for extra in envs:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HISTGPU_NUM_THREADS="1", **extra)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH", "")) if p)
            procs.append(
                subprocess.Popen(
                    [sys.executable, WORKER, kind, logdir],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # its own process group, killed below
                )
            )
        deadline = time.monotonic() + TIMEOUT_S
        results = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{kind} worker did not finish within {TIMEOUT_S} s")
            results.append((p.returncode, out, err))
        return results
    finally:
        kill_process_groups(procs)


def _report(rc: int, out: str, err: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    tail = "\n".join(ln for ln in err.splitlines() if "I0000" not in ln)[-3000:]
    assert rc == 0 and lines, f"worker failed (rc={rc}):\n{out}\n{tail}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("mirrored"))
    (res,) = _run("mirrored", logdir, [{}])
    return logdir, [_report(*res)]


@pytest.fixture(scope="module")
def multiworker(tmp_path_factory):
    for attempt in range(2):  # a port picked here can be taken before TF binds it: retry once
        logdir = str(tmp_path_factory.mktemp("multiworker"))
        cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
        envs = [{"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})} for i in range(2)]
        results = _run("multiworker", logdir, envs)
        if attempt == 0 and any(rc != 0 and "already in use" in err for rc, _, err in results):
            continue
        return logdir, [_report(*r) for r in results]


RUNS = {"mirrored": ("mirrored", 4, 1), "multiworker": ("multiworker", 2, 2)}  # fixture, replicas, workers


@pytest.fixture(params=sorted(RUNS))
def run(request):
    fixture, replicas, workers = RUNS[request.param]
    logdir, reports = request.getfixturevalue(fixture)
    return request.param, logdir, reports, replicas, workers


# ----------------------------------------------------------------- reading what was written


def _accumulator(path: str):
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(path, size_guidance={ea.TENSORS: 0, ea.HISTOGRAMS: 0, ea.SCALARS: 0})
    acc.Reload()
    return acc


def _raw_values(path: str) -> Dict[str, list]:
    """tag -> [(step, Summary.Value)], every value written, as TensorBoard's loader reads it."""
    import glob

    from tensorboard.backend.event_processing import event_file_loader

    out: Dict[str, list] = {}
    for f in sorted(glob.glob(os.path.join(path, "events.out.tfevents.*"))):
        for e in event_file_loader.LegacyEventFileLoader(f).Load():
            for v in e.summary.value if e.HasField("summary") else ():
                out.setdefault(v.tag, []).append((e.step, v))
    return out


def _ndarray(tensor_proto) -> np.ndarray:
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(tensor_proto)


def _expected_tags(kind: str) -> List[Tuple[str, str, str]]:
    """(scenario, v2 tag, v1 tag) for everything a run of ``kind`` writes."""
    tags = [(sc, W.tag(sc, m), W.tag(sc, m, v1=True)) for sc in W.SCENARIOS for m in W.modes_of(sc, kind)]
    return tags + [("uneven", "kw/xr", None), ("var", "var/xr", None), ("var", "var/rep_fn", None)]


# ------------------------------------------------------------------------------- tests


def test_workers_checked_their_own_tensors(run):
    kind, _, reports, replicas, workers = run
    assert len(reports) == workers
    for r in reports:
        assert r["replicas"] == replicas
        assert r["failures"] == [], r["failures"]
        assert r["checks"] > 0


def test_written_once_by_the_chief(run):
    kind, logdir, _, _, workers = run
    chief = _raw_values(os.path.join(logdir, "worker0"))
    for _sc, t2, t1 in _expected_tags(kind):
        for t in (t2, t1):
            if t is not None:
                assert len(chief.get(t, [])) == 1, f"{t}: written {len(chief.get(t, []))} times"
    for w in range(1, workers):
        assert _raw_values(os.path.join(logdir, f"worker{w}")) == {}, f"worker {w} wrote summaries"


@pytest.mark.parametrize("scenario", W.SCENARIOS)
def test_v2_equals_the_whole_tensor(run, scenario):
    import histgpu
    from histgpu import proto

    kind, logdir, _, replicas, _ = run
    whole = W.whole(scenario, replicas)
    want = histgpu.histogram(whole, W.K[scenario])
    acc = _accumulator(os.path.join(logdir, "worker0"))
    raw = _raw_values(os.path.join(logdir, "worker0"))
    tags = [t2 for sc, t2, _ in _expected_tags(kind) if sc == scenario]
    assert tags
    for t in tags:
        (event,) = acc.Tensors(t)
        got = _ndarray(event.tensor_proto)
        assert event.step == 1
        assert got.dtype == np.float64 and np.array_equal(got.view(np.int64), want.view(np.int64)), t
        assert acc.SummaryMetadata(t).plugin_data.plugin_name == "histograms", t
        # the whole Summary.Value: tag, metadata and tensor bytes as tf.summary.histogram writes them
        (_, value), = raw[t]
        assert value.SerializeToString(deterministic=True) == proto.histogram_v2_value(t, want).SerializeToString(
            deterministic=True
        ), t


@pytest.mark.parametrize("scenario", W.SCENARIOS)
def test_v1_equals_the_whole_tensor(run, scenario):
    from histgpu.proto import histogram_proto

    kind, logdir, _, replicas, _ = run
    want = histogram_proto(W.whole(scenario, replicas))
    acc = _accumulator(os.path.join(logdir, "worker0"))
    raw = _raw_values(os.path.join(logdir, "worker0"))
    tags = [t1 for sc, _, t1 in _expected_tags(kind) if sc == scenario and t1 is not None]
    for t in tags:
        (event,) = acc.Histograms(t)
        hv = event.histogram_value
        assert (hv.min, hv.max, hv.num, hv.sum, hv.sum_squares) == (want.min, want.max, want.num, want.sum, want.sum_squares), t
        assert list(hv.bucket_limit) == list(want.bucket_limit) and list(hv.bucket) == list(want.bucket), t
        (_, value), = raw[t]
        assert value.histo.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True), t


def test_mirrored_variable_is_one_value(run):
    import histgpu

    _, logdir, _, _, _ = run
    want = histgpu.histogram(W.VAR_VALUES, W.K_VAR)
    acc = _accumulator(os.path.join(logdir, "worker0"))
    for t in ("var/xr", "var/rep_fn"):
        (event,) = acc.Tensors(t)
        assert np.array_equal(_ndarray(event.tensor_proto).view(np.int64), want.view(np.int64)), t


def test_nonfinite_counts_are_global_and_visible(run):
    kind, logdir, _, replicas, _ = run
    whole = W.whole("nan", replicas)
    want = {"nan": int(np.isnan(whole).sum()), "posinf": int((whole == np.inf).sum()), "neginf": int((whole == -np.inf).sum())}
    assert want["nan"] and want["posinf"]  # the scenario holds both on several shards
    acc = _accumulator(os.path.join(logdir, "worker0"))
    for _, t2, t1 in [x for x in _expected_tags(kind) if x[0] == "nan"]:
        for t in (t2, t1):
            for what, n in want.items():
                if n == 0:
                    continue
                (event,) = acc.Tensors(f"{t}/nonfinite/{what}")
                assert float(_ndarray(event.tensor_proto)) == n, f"{t}/nonfinite/{what}"
