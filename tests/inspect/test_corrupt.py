"""Damaged event files: a clear message for each, and the rest of the logdir still reported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from histgpu.inspect import inspect_logdir
from histgpu.inspect.reader import scan_records
from histgpu.writer import SummaryWriter

from . import synth as S


def _only_file(run_dir) -> str:
    (name,) = [f for f in os.listdir(run_dir) if "tfevents" in f]
    return os.path.join(run_dir, name)


def _write(run_dir, steps, seed=0, suffix="") -> str:
    rng = np.random.default_rng(seed)
    with SummaryWriter(str(run_dir), filename_suffix=suffix) as w:
        for step in steps:
            w.add_histogram("w", rng.normal(0, 1, 500), step)
            w.add_histogram("g", rng.normal(0, 0.01, 500), step, bins=30, layout="v2")
        return w.file_path


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect-corrupt")
    S.write_histgpu(str(root), ["healthy"])
    files = {}

    files["truncated"] = path = _write(root / "truncated", range(6))
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-40])  # cut inside the last record

    files["corrupted"] = path = _write(root / "corrupted", range(6))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # flip a byte in the middle: a checksum fails
    open(path, "wb").write(bytes(data))

    os.makedirs(root / "garbage")
    files["garbage"] = path = str(root / "garbage" / "events.out.tfevents.1.garbage")
    open(path, "wb").write(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())

    # Two files in one run: the first is damaged, the second (later steps) is fine.
    first = _write(root / "two_files", range(0, 4), seed=2, suffix=".a")
    second = _write(root / "two_files", range(4, 8), seed=3, suffix=".b")
    data = bytearray(open(first, "rb").read())
    data[-30] ^= 0xFF
    open(first, "wb").write(bytes(data))
    files["two_files"] = first
    assert sorted(os.listdir(root / "two_files")) == sorted(os.path.basename(p) for p in (first, second))
    return str(root), files


def test_scan_records(tmp_path):
    path = _write(tmp_path, range(3))
    records, end, size = scan_records(path)
    assert records == 1 + 3 * 2 and end == size  # header event + 2 histograms per step
    open(path, "ab").write(b"\x01\x02\x03")
    assert scan_records(path)[1:] == (size, size + 3)


def test_problems_reported_and_rest_read(logdir):
    root, files = logdir
    res = inspect_logdir(root)
    problems = {p.path: p.message for p in res.data.problems}
    assert set(problems) == set(files.values()), problems

    assert "truncated event file" in problems[files["truncated"]]
    assert "40 bytes after the last complete record" not in problems[files["truncated"]]  # cut inside it
    assert "corrupted record at byte" in problems[files["corrupted"]]
    assert "checksum" in problems[files["corrupted"]]
    assert "nothing could be read from this file" in problems[files["garbage"]]
    for key in ("truncated", "corrupted", "two_files"):
        assert "the rest of this file is skipped" in problems[files[key]]

    by = {(s.run, s.tag): s for s in res.data.series}
    # The healthy run is complete; damaged files keep the events before the damage.
    assert len(by[("healthy", "dense/kernel")].stats) == S.STEPS
    assert 1 <= len(by[("truncated", "w")].stats) <= 6 and len(by[("truncated", "g")].stats) == 5
    assert len(by[("corrupted", "w")].stats) < 6
    # The second file of a run is read after a damaged first one.
    assert [s.step for s in by[("two_files", "w")].stats][-4:] == [4, 5, 6, 7]
    assert {d.run for d in res.diagnoses} >= {"healthy", "truncated", "corrupted", "two_files"}


def test_cli_reports_damage_and_data(logdir, tmp_path):
    root, files = logdir
    copy = tmp_path / "logs"
    shutil.copytree(root, copy)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "histgpu", "inspect", str(copy), "--out", str(tmp_path / "out"), "--no-plots"],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.startswith("Read problems (the rest of the logdir was read):")
    for path in files.values():
        assert os.path.basename(path) in out
    assert "healthy" in out and "two_files" in out
    html = (tmp_path / "out" / "index.html").read_text()
    assert "Read problems" in html and "truncated event file" in html


def test_console_script_installed():
    exe = shutil.which("histgpu", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the histgpu console script is not installed next to this Python (pip install -e .)")
    proc = subprocess.run([exe, "inspect", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for option in ("--out", "--tags", "--vanish-abs", "--explode-abs", "--frozen-tol", "--grad-tags"):
        assert option in proc.stdout
