"""histgpu inspect on synthetic logdirs of known behaviour, written by histgpu's SummaryWriter.

Both formats histgpu writes: the v1 HistogramProto (``bins="tensorflow"``, PyTorch's
default) and the v2 bucket tensor (``bins=30``, ``tf.summary.histogram``'s).
"""

from __future__ import annotations

import io
import json
import os
from typing import Dict, Tuple

import pytest

from histgpu import cli
from histgpu.inspect import Diagnosis, Thresholds, inspect_logdir

from . import synth as S

FORMATS = {"v1": "tensorflow", "v2": 30}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("inspect-synth")
    for fmt, bins in FORMATS.items():
        S.write_histgpu(str(root / fmt), S.PATTERNS, bins=bins)
    return str(root)


@pytest.fixture(scope="module")
def result(logdir):
    return inspect_logdir(logdir)


def _by_key(result) -> Dict[Tuple[str, str], Diagnosis]:
    return {(d.run, d.tag): d for d in result.diagnoses}


def _labels(d: Diagnosis):
    return {f.label for f in d.problems}, {f.label for f in d.trends}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_series_is_read(result, fmt):
    found = {(d.run, d.tag) for d in result.diagnoses}
    for name in S.PATTERNS:
        for tag in S.PATTERNS[name](0):
            assert (f"{fmt}/{name}", tag) in found
    for s in result.data.series:
        assert len(s.stats) == S.STEPS
        assert s.fmt == ("v1" if s.run.startswith("v1/") else "v2")
    assert not result.data.problems


@pytest.mark.parametrize("fmt", FORMATS)
def test_healthy_is_not_flagged(result, fmt):
    by = _by_key(result)
    for tag in ("dense/kernel", "dense/kernel_grad"):
        d = by[(f"{fmt}/healthy", tag)]
        assert d.problems == [] and d.trends == [], [str(f) for f in d.flags]
        assert d.trend_text() == "stable" and d.problem_text() == "-"
    assert by[(f"{fmt}/healthy", "dense/kernel_grad")].kind == "gradient"
    assert by[(f"{fmt}/healthy", "dense/kernel")].kind == "weights"


@pytest.mark.parametrize("fmt", FORMATS)
def test_vanishing_gradients(result, fmt):
    d = _by_key(result)[(f"{fmt}/vanishing", "dense/kernel_grad")]
    problems, trends = _labels(d)
    assert problems == {"vanishing"}
    assert "narrowing" in trends
    evidence = " ".join(f.evidence for f in d.problems)
    assert "100.0% of values within +-1e-06" in evidence and "RMS magnitude" in evidence


@pytest.mark.parametrize("fmt", FORMATS)
def test_exploding_gradients_with_nan(result, fmt):
    d = _by_key(result)[(f"{fmt}/exploding", "dense/kernel_grad")]
    problems, _ = _labels(d)
    assert problems == {"exploding"}
    evidence = [f.evidence for f in d.problems]
    # 7 NaN + 2 Inf at each of the last 3 steps, counted by histgpu's companion scalars.
    assert any("27 NaN/Inf values left out at step 13, 14, 15" in e for e in evidence), evidence
    assert any("max |x|" in e for e in evidence) and any("RMS magnitude" in e for e in evidence)
    assert [s.nonfinite for s in d.stats][-3:] == [9, 9, 9]


@pytest.mark.parametrize("fmt", FORMATS)
def test_frozen_weights_not_learning(result, fmt):
    d = _by_key(result)[(f"{fmt}/frozen", "dense/kernel")]
    problems, trends = _labels(d)
    assert problems == {"not learning"} and not trends
    assert "flat (uniform-like)" in d.problems[0].evidence


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name,label", [("shifting", "shifting right"), ("narrowing", "narrowing"), ("widening", "widening")])
def test_trends(result, fmt, name, label):
    d = _by_key(result)[(f"{fmt}/{name}", "dense/kernel")]
    problems, trends = _labels(d)
    assert trends == {label} and not problems


def test_thresholds_are_adjustable(logdir):
    loose = inspect_logdir(logdir, runs="healthy", thresholds=Thresholds(explode_abs=0.01, shift_sigma=0.001))
    d = _by_key(loose)[("v2/healthy", "dense/kernel_grad")]
    assert "exploding" in d.problem_text()
    strict = inspect_logdir(logdir, runs="vanishing", thresholds=Thresholds(vanish_abs=1e-30, vanish_decay=1e30))
    assert all(not d.problems for d in strict.diagnoses)
    other = inspect_logdir(logdir, runs="v1/exploding", thresholds=Thresholds(grad_regex="^nothing$"))
    (d,) = other.diagnoses
    assert d.kind == "weights"
    # Only the NaN/Inf rule holds for weights; magnitude rules are for gradients.
    assert [f.label for f in d.problems] == ["exploding"] and "NaN/Inf" in d.problems[0].evidence


def _run_cli(*argv: str) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_cli_table_flags_on_the_tags_own_row(logdir):
    rc, out, err = _run_cli("inspect", logdir)
    assert rc == 0
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0].startswith(("v1/", "v2/")):
            rows[(parts[0], parts[1])] = line
    assert len(rows) == 2 * 8
    for fmt in FORMATS:
        assert rows[(f"{fmt}/vanishing", "dense/kernel_grad")].rstrip().endswith("vanishing")
        assert rows[(f"{fmt}/exploding", "dense/kernel_grad")].rstrip().endswith("exploding")
        assert rows[(f"{fmt}/frozen", "dense/kernel")].rstrip().endswith("not learning")
        assert "shifting right" in rows[(f"{fmt}/shifting", "dense/kernel")]
        for tag in ("dense/kernel", "dense/kernel_grad"):
            healthy = rows[(f"{fmt}/healthy", tag)].split()
            assert healthy[-2:] == ["stable", "-"]
    assert "Evidence:" in out and "27 NaN/Inf values" in out
    # Progress went to stderr, not into the report.
    assert "event file(s)" in err and "[1/14]" in err and "read 16 histogram series" in err
    assert "event file(s)" not in out


def test_cli_options(logdir, tmp_path):
    rc, out, _ = _run_cli("inspect", logdir, "--tags", "kernel_grad$", "--runs", "^v2/", "-q", "--strict")
    assert rc == 1  # --strict and problems found
    assert "v1/" not in out and "dense/kernel " not in out and "v2/vanishing" in out
    rc, out, _ = _run_cli("inspect", logdir, "--runs", "healthy", "-q", "--strict", "--explode-abs", "1e9")
    assert rc == 0
    rc, out, _ = _run_cli("inspect", logdir, "--runs", "healthy", "-q", "--explode-abs", "0.001")
    assert "exploding" in out
    rc, out, _ = _run_cli("inspect", logdir, "--tags", "no-such-tag", "-q")
    assert rc == 1 and "no histogram summaries" in out
    rc, _, err = _run_cli("inspect", str(tmp_path / "missing"), "-q")
    assert rc == 2 and "no such directory" in err
    with pytest.raises(SystemExit) as e:
        _run_cli("inspect", logdir, "--vanish-frac", "-1")
    assert e.value.code == 2
    rc, _, err = _run_cli("inspect", logdir, "--width-ratio", "0.5")
    assert rc == 2 and "--width-ratio must be > 1" in err


def test_json_report(logdir, tmp_path):
    rc, out, _ = _run_cli("inspect", logdir, "--runs", "^v1/(exploding|healthy)$", "--out", str(tmp_path), "-q",
                          "--no-plots")
    assert rc == 0 and f"report: {tmp_path / 'index.html'}" in out
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["thresholds"]["explode_abs"] == 1e3 and not data["read_problems"]
    series = {(s["run"], s["tag"]): s for s in data["series"]}
    ex = series[("v1/exploding", "dense/kernel_grad")]
    assert [p["label"] for p in ex["problems"]] == ["exploding"] * 3
    assert ex["steps"][-1]["nonfinite"] == 9 and ex["steps"][-1]["exact_moments"]
    assert set(ex["steps"][0]["quantiles"]) == {"0", "668", "1587", "3085", "5000", "6915", "8413", "9332", "10000"}
    assert series[("v1/healthy", "dense/kernel")]["problems"] == []
    assert not os.path.exists(tmp_path / "plots")
