"""Worker processes of the multi-process tests."""

import os


def kill_process_groups(procs):
    """Kill (SIGKILL) the process group of every still-running Popen started with
    ``start_new_session=True``, and reap it: tests that start workers clean up even on failure."""
    import signal

    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def run_ranks(argv_of_rank, world, env, timeout_s, what):
    """Start `world` worker processes (each in its own process group), wait for all within
    `timeout_s`, and return each one's last JSON line; fail the test, naming `what`, on a
    timeout or a failed rank. Every process group is killed in the end, whatever happened."""
    import json
    import subprocess
    import time

    import pytest

    procs = []
    reports = []
    try:
        for rank in range(world):
            procs.append(subprocess.Popen(argv_of_rank(rank), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, start_new_session=True))
        deadline = time.monotonic() + timeout_s
        for rank, p in enumerate(procs):
            try:
                out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"{what}: {world} ranks did not finish within {timeout_s} s")
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            assert p.returncode == 0 and lines, f"{what}: rank {rank} failed (rc={p.returncode}):\n{out}\n{err[-3000:]}"
            reports.append(json.loads(lines[-1]))
    finally:
        kill_process_groups(procs)
    return reports
