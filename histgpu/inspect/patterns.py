"""User regular expressions (``--tags``, ``--runs``, ``--grad-tags``), matched with a time bound.

Python's ``re`` backtracks: a pattern such as ``(a+)+$`` takes exponential time on a tag
like ``aaaa...a!``, and the matching holds the GIL, so neither a thread nor a signal can
stop it. :class:`BoundedRegex` therefore matches

* in this process, patterns that cannot backtrack much: literals, character classes,
  anchors and small alternations, with no repetition, back-reference or look-around
  (``grad``, ``kernel|bias``, ``^dense/``);
* every other pattern in a worker process, one string at a time: a string that takes
  longer than ``timeout`` seconds kills the worker and raises :class:`RegexTimeoutError`.

Results are cached per string, so each distinct tag or run name is matched once.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import weakref
from typing import Any, Dict, Optional

__all__ = ["BoundedRegex", "RegexTimeoutError", "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 2.0  # per string; a sane pattern matches a tag in microseconds

# Alternatives a backtracking-free pattern may explore at one position (see _explores).
_MAX_PATHS = 64

# The worker: first line [pattern, flags], then one JSON string per line -> "1" or "0".
_WORKER = r"""
import json, re, sys
pattern, flags = json.loads(sys.stdin.readline())
rx = re.compile(pattern, flags)
for line in sys.stdin:
    sys.stdout.write("1\n" if rx.search(json.loads(line)) else "0\n")
    sys.stdout.flush()
"""


class RegexTimeoutError(ValueError):
    """A user regular expression took too long on one string (catastrophic backtracking)."""


def _parse(pattern: str, flags: int) -> Any:
    try:
        from re import _parser as parser  # type: ignore[attr-defined]  # Python >= 3.11
    except ImportError:  # pragma: no cover - older Pythons
        import sre_parse as parser
    return parser.parse(pattern, flags)


def _explores(subpattern: Any) -> Optional[int]:
    """How many alternatives matching ``subpattern`` can try at one position, or None
    when it repeats, refers back or looks around (it may then backtrack without bound)."""
    paths = 1
    for op, av in subpattern:
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "IN", "ANY", "AT"):
            continue
        if name == "SUBPATTERN":
            inner = _explores(av[-1])
        elif name == "BRANCH":
            counts = [_explores(alt) for alt in av[1]]
            inner = None if None in counts else sum(c for c in counts if c is not None)
        else:
            return None
        if inner is None:
            return None
        paths *= inner
        if paths > _MAX_PATHS:
            return None
    return paths


def _cannot_backtrack(pattern: str, flags: int) -> bool:
    try:
        return _explores(_parse(pattern, flags)) is not None
    except Exception:  # noqa: BLE001 - a private parser that changed: use the worker
        return False


def _stop(proc: subprocess.Popen) -> None:
    """End the worker this module started (its stdin closing ends it; kill if it is busy)."""
    assert proc.stdin is not None and proc.stdout is not None  # both are pipes
    if proc.poll() is None:
        try:
            proc.stdin.close()
            proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass


class BoundedRegex:
    """``re.search`` of a user pattern that returns or raises within ``timeout`` seconds per string.

    Parameters
    ----------
    pattern : str
        The regular expression (compiled here first, so a bad one raises ``re.error``).
    flags : int, optional
        ``re`` flags.
    what : str, optional
        Where the pattern came from (``"--tags"``), for the error message.
    timeout : float, optional
        Seconds one string may take (default :data:`DEFAULT_TIMEOUT_S`).
    """

    def __init__(self, pattern: str, flags: int = 0, *, what: str = "regex", timeout: float = DEFAULT_TIMEOUT_S):
        self.pattern = pattern
        self.flags = flags
        self.what = what
        self.timeout = timeout
        self._compiled = re.compile(pattern, flags)
        self.in_process = _cannot_backtrack(pattern, flags)
        self._cache: Dict[str, bool] = {}
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._answers: "queue.Queue[Optional[str]]" = queue.Queue()
        self._finalizer: Optional[weakref.finalize] = None

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text``.

        Raises
        ------
        RegexTimeoutError
            If matching ``text`` took longer than ``timeout`` seconds.
        """
        with self._lock:
            hit = self._cache.get(text)
            if hit is None:
                hit = bool(self._compiled.search(text)) if self.in_process else self._ask_worker(text)
                self._cache[text] = hit
            return hit

    __call__ = search

    def close(self) -> None:
        """Stop the worker process, if one was started."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._proc = None

    def __enter__(self) -> "BoundedRegex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------- worker

    def _start(self) -> subprocess.Popen:
        # -I -S: no site packages or user environment, so it starts in milliseconds.
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WORKER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, encoding="utf-8")
        self._finalizer = weakref.finalize(self, _stop, proc)
        answers: "queue.Queue[Optional[str]]" = queue.Queue()
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        stdout = proc.stdout
        self._answers = answers

        def read() -> None:  # a thread, so that waiting for an answer can time out
            for line in stdout:
                answers.put(line.strip())
            answers.put(None)  # the worker exited

        threading.Thread(target=read, name="histgpu-regex-answers", daemon=True).start()
        proc.stdin.write(json.dumps([self.pattern, self.flags]) + "\n")
        proc.stdin.flush()
        return proc

    def _ask_worker(self, text: str) -> bool:
        if self._proc is None:
            self._proc = self._start()
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(text) + "\n")
            self._proc.stdin.flush()
            answer = self._answers.get(timeout=self.timeout)
        except queue.Empty:
            self._proc.kill()  # still busy with the runaway match
            self.close()
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise RegexTimeoutError(
                f"{self.what} {self.pattern!r} took more than {self.timeout:g} s on {shown!r}: it backtracks "
                "catastrophically (nested or adjacent repeats such as (a+)+ or .*.*); simplify it"
            ) from None
        except OSError as e:
            self.close()
            raise RuntimeError(f"{self.what}: the regex worker process failed: {e}") from None
        if answer is None:
            self.close()
            raise RuntimeError(f"{self.what}: the regex worker process exited unexpectedly")
        return answer == "1"
