"""`histgpu selftest`: every engine of this machine against the baseline CPU build."""

import io
import subprocess
import sys

from histgpu import _cpu, selftest


def test_selftest_passes_and_names_every_engine():
    out = io.StringIO()
    assert selftest.run(out) == 0, out.getvalue()
    text = out.getvalue()
    for name in ["cpu baseline", "cuda-emulated"] + [f"cpu {isa}" for isa in _cpu.supported_isas()]:
        assert any(line.startswith(name) and "pass" in line for line in text.splitlines()), (name, text)
    assert "cuda" in text  # a real GPU is listed: passed, or skipped with the reason
    assert "every engine that ran gave the baseline bits" in text


def test_selftest_reports_a_wrong_engine():
    class Wrong:
        """An engine one count off in every v2 histogram."""

        def __init__(self):
            self.inner = _cpu.CpuEngine(threads=1)

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def v2(self, view, k):
            return _Shifted(self.inner.v2(view, k))

        def v2_many(self, views, ks):
            return [_Shifted(r) for r in self.inner.v2_many(views, ks)]

    class _Shifted:
        def __init__(self, r):
            self.edges, self.stats = r.edges, r.stats
            self.counts = r.counts + (1 if len(r.counts) else 0)

    engine = selftest.Engine("wrong", Wrong)
    fails = selftest._run_group(engine.make(), _cpu.CpuEngine(threads=1, isa="baseline"), engine,
                                selftest._groups()["special values"])
    assert fails and all("counts differ" in f for f in fails if "v1" not in f)


def test_selftest_command_line():
    r = subprocess.run([sys.executable, "-m", "histgpu", "selftest"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "engine" in r.stdout and "cuda-emulated" in r.stdout
