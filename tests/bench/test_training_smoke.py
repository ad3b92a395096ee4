"""Smoke test of the training scenarios' machinery (issue 14), not of any timing: tiny models,
every variant, the goal and profile tables written."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_training_scenarios_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks", "--scenarios", "training,training_large", "--out", str(out),
           "--variants", "histgpu_writer,histgpu_summary,histgpu_keras", "--dtypes", "bfloat16",
           "--train-width", "16", "--train-blocks", "2", "--train-steps", "2", "--large-layers", "1"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]

    training = json.loads((out / "training.json").read_text())
    for name in ("histgpu_writer", "histgpu_summary", "histgpu_keras"):
        res = training["results"][name]
        assert res["status"] == "ok", res
        assert res["read_s"] > 0
        assert name == "histgpu_keras" or res["read_ratio"] > 0  # the callback's needs keras_no_hist
        assert {"input", "compute", "proto", "framework"} <= set(res["profile_s"])
    assert [g["variant"] for g in training["goals"]][:2] == ["histgpu_writer", "histgpu_writer_v2"]
    assert training["goals"][0]["value"] > 0 and training["goals"][1]["value"] is None  # v2 did not run
    md = (out / "training.md").read_text()
    assert "## Goals (issue 14)" in md and "## Where the time goes" in md

    large = json.loads((out / "training_large.json").read_text())
    assert [c["dtype"] for c in large["cases"]] == ["bfloat16"]
    for name in ("histgpu_writer", "histgpu_summary", "histgpu_keras"):
        for case in large["cases"]:
            res = large["results"][name][case["id"]]
            assert res["status"] == "ok", (name, case["id"], res)
            assert res["tensors"] == 16 * 1 + 4
    assert "training_large.md" in (out / "summary.md").read_text()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "training_large.png").stat().st_size > 1000
