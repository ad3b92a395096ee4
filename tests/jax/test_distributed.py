"""histgpu.jax across processes, run for real: a 2-process jax.distributed job on 127.0.0.1 (JAX's
CPU collectives, Gloo), 4 host devices per process, with jax_enable_x64 off and on.

Each process runs tests/jax/distributed_worker.py in its own process group, bounded in time and
killed in a ``finally``. Every process checks its results against histgpu.compute / compute_v1
of the whole array; process 0's event files are compared here with add_histograms' of the
gathered arrays.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from ..processes import kill_process_groups
from ..tensorboard.tb_helpers import read_events

pytest.importorskip("jax")

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 180
NPROC = 2

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _summaries(logdir):
    return [(e.step, e.summary.SerializeToString(deterministic=True)) for e in read_events(logdir)
            if e.HasField("summary")]


@pytest.mark.parametrize("x64", [False, True], ids=["x64-off", "x64-on"])
def test_two_process_job_is_exact(tmp_path, x64):
    port = _free_port()
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", HISTGPU_NUM_THREADS="1",
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    procs = []
    try:
        for pid in range(NPROC):
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "distributed_worker.py"), str(pid), str(NPROC), str(port),
                 "1" if x64 else "0", str(tmp_path)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            ))
        deadline = time.monotonic() + TIMEOUT_S
        outputs = []
        for p in procs:
            try:
                outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                kill_process_groups(procs)  # a process that failed leaves the other in a collective
                tails = "\n".join(f"--- process {i}:\n{q.communicate()[1][-3000:]}" for i, q in enumerate(procs))
                pytest.fail(f"the jax.distributed processes did not finish within {TIMEOUT_S} s\n{tails}")
    finally:
        kill_process_groups(procs)
    reports = []
    for p, (out, err) in zip(procs, outputs):
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        assert p.returncode == 0 and lines, f"process failed (rc={p.returncode}):\n{out}\n{err[-4000:]}"
        reports.append(json.loads(lines[-1]))
    for r in reports:
        assert r["failures"] == [], r["failures"]
        assert r["devices"] == 8 and r["local"] == 4
        assert r["spanning_arrays"] > 0  # arrays that no single process holds entirely were merged
        naive = r["naive_int64_gather"]
        if x64:
            assert naive == {"dtype": "int64", "values": [[2**40, -3], [2**40 + 1, -3]]}
        else:  # JAX narrows int64 to int32 without x64, silently: 2**40 + 1 arrives as 1
            assert naive == {"dtype": "int32", "values": [[0, -3], [1, -3]]}
    got, want = _summaries(str(tmp_path / "jax")), _summaries(str(tmp_path / "ref"))
    assert len(got) == 4 and got == want
    # log_histograms_jit: one process ran the callback and wrote both steps, the other nothing;
    # the events are those of log_histograms (bins=30) outside jit
    jitted = [_summaries(str(tmp_path / f"jit{pid}")) for pid in range(NPROC)]
    assert sorted(len(j) for j in jitted) == [0, 2]
    assert max(jitted, key=len) == [w for w in want if b'30/params' in w[1]]
