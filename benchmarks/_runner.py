"""Parent side of the per-method subprocesses: start, stream results, survive crashes.

Each method of a scenario runs in its own ``python -m benchmarks._worker`` process, so its
peak memory is its own and a crash (out of memory, a segfault, a hang) costs one case, not the
suite: the case in progress is recorded as failed (or timed out) and a fresh worker goes on
with the remaining cases.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from benchmarks._worker import MARK

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Environment variables removed in worker processes only (never in tests): on some CPUs they
#: are set machine-wide for old OpenBLAS builds and slow a current numpy down.
UNSET_IN_WORKERS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

Case = Dict[str, Any]
Result = Dict[str, Any]


def worker_env() -> Dict[str, str]:
    """The environment every benchmark subprocess gets."""
    env = dict(os.environ)
    for name in UNSET_IN_WORKERS:
        env.pop(name, None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _tail(path: str, lines: int = 4) -> str:
    try:
        with open(path, errors="replace") as f:
            text = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-400:]


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with status {rc}"


class _LineReader:
    """Whole lines from a pipe, with a deadline (no partial-line blocking)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""
        self.eof = False

    def readline(self, deadline: float) -> Optional[str]:
        """The next line, None at EOF or when the deadline passes (then ``timed_out`` is set)."""
        self.timed_out = False
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                return None
            ready, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode(errors="replace")
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")


def run_method(
    scenario: str,
    method: str,
    cases: List[Case],
    settings: Dict[str, Any],
    *,
    case_timeout_s: Callable[[Case], float],
    on_result: Callable[[Case, Result], None],
    skip_after_timeout: Optional[Callable[[Case, Case], bool]] = None,
) -> None:
    """Run ``cases`` (dicts with a unique ``id``) of ``method`` in worker processes.

    ``on_result(case, result)`` is called once per case, in order of completion, with a result
    dict that always has ``status`` (``ok``, ``skipped``, ``unsupported``, ``failed``) and,
    unless ``ok``, a ``note``. ``case_timeout_s(case)`` bounds each case (from its start event);
    after a time-out, pending cases for which ``skip_after_timeout(timed_out_case, case)`` is
    true are recorded as skipped instead of being run.
    """
    pending = list(cases)
    by_id = {c["id"]: c for c in cases}
    env = worker_env()
    startup_s = float(settings.get("startup_timeout_s", 180.0))
    while pending:
        with tempfile.TemporaryDirectory(prefix="histgpu-bench-") as tmp:
            spec = os.path.join(tmp, "spec.json")
            errlog = os.path.join(tmp, "stderr.log")
            with open(spec, "w") as f:
                json.dump({"cases": pending, "settings": settings}, f)
            with open(errlog, "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks._worker", scenario, method, spec],
                    cwd=str(REPO_ROOT),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                )
            reader = _LineReader(proc.stdout.fileno())  # type: ignore[union-attr]
            current: Optional[Case] = None
            started_any = False
            deadline = time.monotonic() + startup_s
            timed_out = False
            while True:
                line = reader.readline(deadline)
                if line is None:
                    timed_out = reader.timed_out
                    break
                if not line.startswith(MARK):
                    continue
                ev = json.loads(line[len(MARK):])
                case = by_id.get(ev.get("id"))
                if case is None:
                    continue
                if ev.get("event") == "start":
                    current, started_any = case, True
                    deadline = time.monotonic() + case_timeout_s(case)
                elif ev.get("event") == "result":
                    res = {k: v for k, v in ev.items() if k not in ("event", "id")}
                    if case in pending:
                        pending.remove(case)
                        on_result(case, res)
                    current = None
                    deadline = time.monotonic() + startup_s
            if timed_out:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            rc = proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            if not pending:
                break
            if current is not None and current in pending:
                if timed_out:
                    note = f"timed out after {case_timeout_s(current):.0f} s"
                else:
                    tail = _tail(errlog)
                    note = _describe_exit(rc) + (f": {tail}" if tail else "")
                pending.remove(current)
                on_result(current, {"status": "failed", "note": note})
                if timed_out and skip_after_timeout is not None:
                    for other in [c for c in pending if skip_after_timeout(current, c)]:
                        pending.remove(other)
                        on_result(other, {"status": "skipped", "note": "skipped: a smaller case timed out"})
            else:
                # The worker died before (or between) cases, e.g. importing the method failed,
                # or ended without running them: record the rest rather than retry forever.
                if timed_out:
                    what = "timed out while starting" if not started_any else "timed out between cases"
                elif rc != 0:
                    what = _describe_exit(rc)
                else:
                    what = "worker ended without running this case"

                tail = _tail(errlog)
                for c in list(pending):
                    pending.remove(c)
                    on_result(c, {"status": "failed", "note": f"{what}" + (f": {tail}" if tail else "")})
