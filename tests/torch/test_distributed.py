"""histgpu.torch across real processes: 2 and 4 Gloo ranks on 127.0.0.1.

Each rank runs tests/torch/dist_worker.py in its own process group (start_new_session), bounded
in time and killed in a ``finally`` (tests/processes.py); every rank checks its own results
against histgpu's results for the whole tensor with ``==``, and the module scenarios compare
the events ``log_histograms`` writes with those of ``torch.utils.tensorboard.SummaryWriter``.
"""
from __future__ import annotations

import os
import socket
import sys

import pytest

from ..processes import run_ranks as start_ranks

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(world: int, scenario: str, logdir: str) -> list:
    """Start `world` ranks of `scenario`; their JSON reports, or a test failure naming the rank."""
    port = _free_port()
    env = dict(os.environ, HISTGPU_NUM_THREADS="1", OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               MASTER_ADDR="127.0.0.1", TF_CPP_MIN_LOG_LEVEL="3")
    return start_ranks(
        lambda rank: [sys.executable, os.path.join(HERE, "dist_worker.py"), str(rank), str(world), str(port), scenario,
                      logdir],
        world, env, TIMEOUT_S, scenario)


@pytest.mark.parametrize("scenario, world", [("dtensor", 2), ("dtensor", 4), ("fsdp", 4), ("tp", 2)])
def test_sharded_histograms_equal_the_whole_tensors(tmp_path, scenario, world):
    """dtensor on 4 ranks has the 2x2 mesh; fsdp on 4 ranks also runs HSDP on a 2x2 mesh."""
    reports = run_ranks(world, scenario, str(tmp_path))
    failures = [f"rank {r['rank']}: {f}" for r in reports for f in r["failures"]]
    assert failures == [], "\n".join(failures[:20])
    notes = {n for r in reports for n in r["notes"]}
    assert not notes, notes  # e.g. FSDP2 missing: it must run here, not be skipped
