"""The torch.distributed recipe of histgpu.sharded, run for real: 3 ranks, Gloo, 127.0.0.1.

PyTorch is a test dependency (pyproject.toml's ``test`` extra), so this never skips. Each rank runs
tests/distribute/torch_worker.py in its own process group, bounded in time and killed in a
``finally``; rank 0 checks the merged results against histgpu.compute / compute_v1 of the
whole tensor.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch  # noqa: F401,E402 - a test dependency: fail, never skip, where it is missing

from ..processes import kill_process_groups

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 120
WORLD = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torch_distributed_recipe_is_exact():
    port = _free_port()
    env = dict(os.environ, HISTGPU_NUM_THREADS="1", OMP_NUM_THREADS="1")
    procs = []
    try:
        for rank in range(WORLD):
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "torch_worker.py"), str(rank), str(WORLD), str(port)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            ))
        deadline = time.monotonic() + TIMEOUT_S
        for p in procs:
            try:
                out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"torch.distributed ranks did not finish within {TIMEOUT_S} s")
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            assert p.returncode == 0 and lines, f"rank failed (rc={p.returncode}):\n{out}\n{err[-3000:]}"
            assert json.loads(lines[-1])["failures"] == []
    finally:
        kill_process_groups(procs)
