"""``histgpu inspect --out``: unwritable destinations are one-line errors, odd tags still plot,
and ``report.json`` is strict JSON."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from histgpu import cli
from histgpu.inspect import inspect_logdir

from . import crafted as C

pytest.importorskip("matplotlib", reason="matplotlib is needed for the plots (pip install matplotlib)")

MATHTEXT_TAGS = ["cost$\\frac{", "$x^", "a_b%{}$", "\\", "$$", "loss $\\alpha$"]


def _logdir(tmp_path, tags=("w",), wall_times=(1.0, 2.0, 3.0)) -> str:
    rng = np.random.default_rng(0)
    events = [C.version_event()]
    for tag in tags:
        events += [C.v2_event(tag, C.table(rng.normal(0, 1 + s, 100)), s, wall_time=w) for s, w in enumerate(wall_times)]
    C.write(str(tmp_path / "logs" / "run"), [C.record(e) for e in events])
    return str(tmp_path / "logs")


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["inspect", *argv, "-q"], stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("histgpu inspect: ")
    return lines[0]


# --------------------------------------------------------------- unwritable --out


def test_out_is_a_file_subprocess(tmp_path):
    logdir = _logdir(tmp_path)
    target = tmp_path / "report.txt"
    target.write_text("not a directory")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "histgpu", "inspect", logdir, "--out", str(target), "-q"],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    line = _one_error_line(proc.stderr)
    assert f"--out {str(target)!r} is a file" in line
    assert target.read_text() == "not a directory"


def test_out_below_a_file(tmp_path):
    logdir = _logdir(tmp_path)
    (tmp_path / "f").write_text("x")
    rc, _, err = _cli(logdir, "--out", str(tmp_path / "f" / "report"))
    assert rc == 2
    assert "cannot write the report to" in _one_error_line(err) and "Not a directory" in err


def _read_only(monkeypatch, root):
    """Make every write under ``root`` fail as on a read-only filesystem (EROFS).

    Root in a container can write anywhere and may not mount, so the filesystem is
    simulated at the two calls that create things: os.makedirs and the report's open().
    """
    import histgpu.inspect.report as report

    root = os.path.abspath(root)
    real_makedirs, real_open = os.makedirs, open

    def makedirs(path, *a, **k):
        if os.path.abspath(path).startswith(root):
            if os.path.isdir(path) and k.get("exist_ok"):
                return None
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_makedirs(path, *a, **k)

    def ro_open(path, mode="r", *a, **k):
        if any(c in mode for c in "wax+") and os.path.abspath(path).startswith(root):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(os, "makedirs", makedirs)
    monkeypatch.setattr(report, "open", ro_open, raising=False)


@pytest.mark.parametrize("exists", [False, True])
def test_out_on_a_read_only_filesystem(tmp_path, monkeypatch, exists):
    logdir = _logdir(tmp_path)
    out = tmp_path / "ro"
    if exists:
        out.mkdir()  # an existing directory on a read-only mount: the first file write fails
    _read_only(monkeypatch, out)
    rc, stdout, err = _cli(logdir, "--out", str(out), "--no-plots")
    assert rc == 2
    line = _one_error_line(err)
    assert f"cannot write the report to {str(out)!r}: Read-only file system" in line
    assert "report:" not in stdout


# --------------------------------------------------------------- mathtext tags


def test_mathtext_tags_are_drawn_as_plain_text(tmp_path):
    from histgpu.inspect.plots import bands_figure, ridge_figure

    logdir = _logdir(tmp_path, tags=MATHTEXT_TAGS)
    rc, stdout, err = _cli(logdir, "--out", str(tmp_path / "out"))
    assert rc == 0, stdout + err
    plots = sorted(os.listdir(tmp_path / "out" / "plots"))
    assert len(plots) == 2 * len(MATHTEXT_TAGS)
    assert all(os.path.getsize(tmp_path / "out" / "plots" / p) > 1000 for p in plots)

    res = inspect_logdir(logdir)
    by_tag = {s.tag: s for s in res.data.series}
    for d in res.diagnoses:
        for fig in (ridge_figure(d, by_tag[d.tag].buckets), bands_figure(d, res.thresholds)):
            fig.canvas.draw()  # mathtext would raise here
            title = fig.axes[0].get_title()
            assert title.startswith(f"run / {d.tag}"), title


# --------------------------------------------------------------- strict JSON


def _strict_load(path):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=refuse)


def test_report_json_is_strict_with_nan_and_inf(tmp_path):
    logdir = _logdir(tmp_path, wall_times=(float("nan"), float("inf"), 5.0))
    rc, stdout, err = _cli(logdir, "--out", str(tmp_path / "out"), "--no-plots", "--explode-abs", "inf")
    assert rc == 0, stdout + err
    report = _strict_load(tmp_path / "out" / "report.json")
    (series,) = report["series"]
    assert [s["wall_time"] for s in series["steps"]] == [None, None, 5.0]
    assert report["thresholds"]["explode_abs"] is None
    assert report["thresholds"]["vanish_abs"] == 1e-6
