"""Smoke test of the benchmark suite's machinery (not of any timing): tiny sizes, a few seconds.

Checks that ``python -m benchmarks`` runs end to end and writes its pages, that a case too big
for the memory cap is recorded as skipped, and that the subprocess runner turns a crashing or
hanging case into a result and goes on with the rest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_suite_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [
        sys.executable, "-m", "benchmarks",
        "--scenarios", "cpu,training,gpu", "--out", str(out),
        "--sizes", "1000,3000", "--dtypes", "float32,bfloat16", "--buckets", "30",
        "--methods", "histgpu,histgpu_v1,numpy,tb_buckets", "--mem-cap-gib", "0",
        "--variants", "histgpu_writer", "--train-width", "16", "--train-blocks", "2",
        "--train-steps", "2",
    ]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[" in r.stderr and "cpu" in r.stderr  # progress lines

    cpu = json.loads((out / "cpu.json").read_text())
    status = {(x["method"], x["dtype"], x["n"]): x for x in cpu["results"]}
    assert len(status) == 4 * 2 * 2
    for dtype in ("float32", "bfloat16"):
        for n in (1000, 3000):
            ok = status[("histgpu", dtype, n)]
            assert ok["status"] == "ok" and ok["median_s"] > 0 and ok["counted"] == n
            assert status[("histgpu_v1", dtype, n)]["status"] == "ok"
            assert status[("numpy", dtype, n)]["status"] == "ok"
            assert "ratio" in status[("numpy", dtype, n)]
            skipped = status[("tb_buckets", dtype, n)]
            assert skipped["status"] == "skipped" and "would need" in skipped["note"]
    assert cpu["clock"]["loadavg_start"] is None or len(cpu["clock"]["loadavg_start"]) == 3

    md = (out / "cpu.md").read_text()
    assert "| **histgpu.histogram** |" in md and "Load average" in md and "skipped: needs" in md

    training = json.loads((out / "training.json").read_text())["results"]
    assert training["histgpu_writer"]["status"] == "ok", training
    assert training["histgpu_writer"]["tensors"] == 2 * 4 + 2

    summary = (out / "summary.md").read_text()
    assert "cpu.md" in summary and "training.md" in summary and "device_check.sh" in summary
    if importlib.util.find_spec("matplotlib") is not None:
        for png in ("cpu_throughput.png", "cpu_dtypes.png", "training.png"):
            assert (out / png).stat().st_size > 1000


FAKE_SCENARIO = '''
import os, signal, time

def run_worker(method, cases, settings, emit):
    for case in cases:
        emit({"event": "start", "id": case["id"]})
        if case["what"] == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if case["what"] == "hang":
            time.sleep(120)
        emit({"event": "result", "id": case["id"], "status": "ok", "pid": os.getpid()})
'''


def test_runner_survives_crash_and_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "histgpu_bench_fake"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "scenario.py").write_text(textwrap.dedent(FAKE_SCENARIO))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks._runner import run_method
    finally:
        sys.path.remove(str(REPO))

    cases = [{"id": i, "what": w, "n": i} for i, w in enumerate(["ok", "crash", "ok", "hang", "ok", "ok"])]
    got = {}
    run_method(
        "histgpu_bench_fake.scenario", "m", cases, {"startup_timeout_s": 60},
        case_timeout_s=lambda c: 3.0,
        on_result=lambda c, r: got.__setitem__(c["id"], r),
        skip_after_timeout=lambda bad, c: c["id"] == 5,
    )
    assert sorted(got) == [0, 1, 2, 3, 4, 5]
    assert got[0]["status"] == got[2]["status"] == got[4]["status"] == "ok"
    assert got[1]["status"] == "failed" and "SIGKILL" in got[1]["note"]
    assert got[3]["status"] == "failed" and "timed out" in got[3]["note"]
    assert got[5]["status"] == "skipped"
    assert got[0]["pid"] != got[2]["pid"] != got[4]["pid"]  # a fresh worker after each failure
