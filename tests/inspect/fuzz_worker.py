"""Fuzz the whole ``histgpu inspect`` reading path in a process of its own, with capped memory.

Run by test_fuzz_reader.py as ``python -m tests.inspect.fuzz_worker EXAMPLES``. A crash
(SIGSEGV, SIGABRT) would kill only this process; the test then reports it along with
the example printed last. After a warm-up read, the address space is capped at what the
process already maps plus ``HEADROOM``: allocating anything like a declared 2**33 bytes
fails, and every example must still be read without an exception.

Prints ``FUZZ OK <n>`` when every example held.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile

from hypothesis import HealthCheck, given, settings

from . import crafted as C
from . import fuzz_files as F

HEADROOM = 1 << 30  # 1 GiB over the warmed-up process; the files are a few KiB


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _check(root: str, data: bytes) -> None:
    from histgpu.inspect import inspect_logdir
    from histgpu.inspect.report import format_table, report_dict, strict_json_value

    crafted = C.write(os.path.join(root, "crafted"), [data])
    ref = F.reference_read(data)
    res = inspect_logdir(root)  # must not raise

    problems = [p.message for p in res.data.problems if p.path == crafted]
    framing = [m for m in problems if m.startswith(("truncated event file", "corrupted record"))]
    if ref.fault is None:
        assert not framing, framing
    else:
        assert len(framing) == 1, problems
        kind = "truncated event file" if ref.fault == "truncated" else f"corrupted record at byte {ref.end}"
        assert framing[0].startswith(kind), (ref, framing)
        assert f"ends at byte {ref.end}" in framing[0] or ref.fault == "corrupted", (ref, framing)
    skipped = [m for m in problems if "not TensorBoard events" in m]
    assert bool(skipped) == bool(ref.undecodable), (ref, problems)
    if ref.undecodable:
        assert f"skipped {ref.undecodable} record(s)" in skipped[0]
    good_events = 4  # the good run: a version event and 3 histograms
    assert res.data.events == good_events + ref.events, (res.data.events, ref)
    good = [s for s in res.data.series if s.run == "good"]
    assert [(s.tag, s.steps) for s in good] == [("w", [0, 1, 2])]  # the rest of the logdir is read

    format_table(res.diagnoses)
    json.dumps(strict_json_value(report_dict(res)), allow_nan=False)


def main(argv: list) -> int:
    examples = int(argv[0]) if argv else 100
    with tempfile.TemporaryDirectory() as warm:  # import and touch everything before the cap
        C.good_run(os.path.join(warm, "good"))
        _check(warm, b"")
    cap = _mapped_bytes() + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    count = [0]

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(F.event_files())
    def fuzz(data: bytes) -> None:
        count[0] += 1
        print(f"example {count[0]}: {data.hex()}", flush=True)  # the culprit, should this process die
        with tempfile.TemporaryDirectory() as root:
            C.good_run(os.path.join(root, "good"))
            _check(root, data)

    fuzz()
    print(f"FUZZ OK {count[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
