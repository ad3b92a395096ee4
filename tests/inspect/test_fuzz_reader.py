"""Fuzzing the event-file reader: never a crash, never more than a bounded allocation, always a report.

* In this process, :class:`RecordFile` against a reference reader on drawn files, with
  ``tracemalloc`` bounding what it allocates by the size of the file.
* In a subprocess (``fuzz_worker.py``), the whole ``inspect`` reading path on drawn
  files with the address space capped; a crash there fails this test instead of
  killing pytest.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import tracemalloc

from hypothesis import HealthCheck, given, settings

from histgpu.inspect.records import RecordFile

from . import fuzz_files as F

REPO = pathlib.Path(__file__).resolve().parents[2]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(F.event_files())
def test_record_file_agrees_with_the_reference_and_allocates_at_most_the_file(data):
    ref = F.reference_read(data)
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "events.out.tfevents.1.fuzz")
        with open(path, "wb") as f:
            f.write(data)
        rf = RecordFile(path)
        tracemalloc.start()
        try:
            got = list(rf)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert got == ref.records
    assert rf.offset == ref.end and rf.records == len(ref.records)
    assert (rf.error.kind if rf.error else None) == ref.fault
    if rf.error:
        assert rf.error.offset == ref.end and rf.error.size == len(data)
    # What it holds is the records it returns (at most the file) plus small change.
    assert peak <= 2 * len(data) + (64 << 10), (peak, len(data))


def test_whole_reader_in_a_memory_capped_subprocess():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-m", "tests.inspect.fuzz_worker", "150"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("example ")][-1:]
    if proc.returncode < 0:
        raise AssertionError(f"the reader was killed by {signal.Signals(-proc.returncode).name} on {last}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "FUZZ OK 150" in proc.stdout
