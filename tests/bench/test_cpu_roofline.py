"""Smoke test of the cpu_roofline scenario (machinery only, no timing is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cpu_roofline_writes_its_pages(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks", "--scenarios", "cpu_roofline", "--sizes", "1e5", "--out", str(out)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((out / "cpu_roofline.json").read_text())
    keys = {c["key"] for c in data["cases"]}
    assert "read:float32" in keys and "numpy:many" in keys
    for isa in data["isas"]:
        assert f"{isa}:v2:float32:k30" in keys and f"{isa}:v1:bfloat16" in keys and f"{isa}:many" in keys
    assert all(c["median_s"] > 0 for c in data["cases"])
    assert all(c["fraction_of_ceiling"] > 0 for c in data["cases"] if c["reads"])
    md = (out / "cpu_roofline.md").read_text()
    assert "roofline" in md and "## Goals" in md and "Read ceiling" in md
