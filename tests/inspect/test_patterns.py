"""User regular expressions are matched with a time bound: a catastrophic one is an error, not a hang."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from histgpu.inspect import inspect_logdir
from histgpu.inspect.diagnose import Thresholds
from histgpu.inspect.patterns import BoundedRegex, RegexTimeoutError

from . import crafted as C

EVIL = "(a+)+$"  # exponential on "aaa...a!" in Python's backtracking re
EVIL_TAG = "a" * 40 + "!"
STRINGS = ["", "grad", "dense/kernel_grad", "Dense/Kernel", "aaa", "aaab", "kernel|bias", "x\ny", "dense/bias",
           "\u00e9t\u00e9/w", "a" * 200]


@pytest.mark.parametrize("pattern,flags,in_process", [
    ("grad", 0, True),
    ("kernel|bias", 0, True),
    ("^dense/", re.IGNORECASE, True),
    ("[ab]x\\d", 0, True),
    ("a.*b", 0, False),
    (EVIL, 0, False),
    ("(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)", 0, False),  # 128 paths without a repeat
    ("(?<=d)ense", 0, False),
    ("(a)\\1", 0, False),
])
def test_same_answers_as_re_search(pattern, flags, in_process):
    with BoundedRegex(pattern, flags) as rx:
        assert rx.in_process is in_process
        assert [rx.search(s) for s in STRINGS] == [bool(re.search(pattern, s, flags)) for s in STRINGS]


def test_bad_pattern_raises_re_error():
    with pytest.raises(re.error):
        BoundedRegex("(unclosed")


def test_catastrophic_pattern_times_out_then_recovers():
    rx = BoundedRegex(EVIL, what="--tags", timeout=0.5)
    with pytest.raises(RegexTimeoutError, match=r"--tags '\(a\+\)\+\$' took more than 0.5 s on 'a{40}!'"):
        rx.search(EVIL_TAG)
    assert rx.search("aaa") and not rx.search("aab")  # a fresh worker answers the next string
    proc = rx._proc
    rx.close()
    assert proc.poll() is not None  # the worker was ended, not left behind


def _logdir(tmp_path, tags, run="run"):
    rng = np.random.default_rng(0)
    events = [C.version_event()] + [C.v2_event(tag, C.table(rng.normal(0, 1, 100)), s) for tag in tags
                                    for s in range(2)]
    C.write(str(tmp_path / run), [C.record(e) for e in events])
    return str(tmp_path)


def _cli(*argv):
    # A subprocess with a deadline: a regression hangs, and this fails instead of hanging the suite.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "histgpu", "inspect", *argv, "-q"], capture_output=True, text=True,
                          timeout=240, env=env)


@pytest.mark.parametrize("option", ["--tags", "--grad-tags"])
def test_cli_catastrophic_tag_regex_is_a_one_line_error(tmp_path, option):
    logdir = _logdir(tmp_path, ["w", EVIL_TAG])
    proc = _cli(logdir, option, EVIL)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("histgpu inspect:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"{option} '(a+)+$' took more than" in lines[0] and "backtracks catastrophically" in lines[0]


def test_cli_catastrophic_run_regex(tmp_path):
    logdir = _logdir(tmp_path, ["w"], run=EVIL_TAG)
    proc = _cli(logdir, "--runs", EVIL)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--runs '(a+)+$' took more than" in proc.stderr


def test_regex_options_still_select(tmp_path):
    logdir = _logdir(tmp_path, ["dense/kernel", "dense/kernel_grad", "dense/bias"])
    res = inspect_logdir(logdir, tags=r"kern.*", thresholds=Thresholds(grad_regex=r"_g.*d$"))
    assert [(d.tag, d.kind) for d in res.diagnoses] == [("dense/kernel", "weights"),
                                                         ("dense/kernel_grad", "gradient")]
