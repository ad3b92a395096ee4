"""The torch.distributed recipe of histgpu.sharded, run for real: 3 ranks, Gloo, 127.0.0.1.

PyTorch is a test dependency (pyproject.toml's ``test`` extra), so this never skips. Each rank runs
tests/distribute/torch_worker.py in its own process group, bounded in time and killed in a
``finally``; rank 0 checks the merged results against histgpu.compute / compute_v1 of the
whole tensor.
"""
from __future__ import annotations

import os
import socket
import sys

import torch  # noqa: F401,E402 - a test dependency: fail, never skip, where it is missing

from ..processes import run_ranks

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
    reports = run_ranks(
        lambda rank: [sys.executable, os.path.join(HERE, "torch_worker.py"), str(rank), str(WORLD), str(port)],
        WORLD, env, TIMEOUT_S, "torch.distributed recipe")
    assert all(r["failures"] == [] for r in reports)
