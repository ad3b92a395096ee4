"""The ``histgpu`` command line (also ``python -m histgpu``).

::

    histgpu inspect LOGDIR [--out DIR] [--tags REGEX] [--runs REGEX] [threshold options]
    histgpu selftest [-v]

``selftest`` exits with 0 only when every engine that ran gave the baseline CPU build's bits.
``inspect``'s exit status: 0 on success (flags or not), 1 when no histogram was found or, with
``--strict``, when any problem flag was raised, 2 for usage errors (argparse), a
missing logdir, a ``--tags``/``--runs``/``--grad-tags`` pattern that takes too long on
one name (see :mod:`histgpu.inspect.patterns`), or an ``--out`` that cannot be written
(each reported in one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import fields
from typing import List, Optional, TextIO

__all__ = ["main", "build_parser"]


class _Progress:
    """Progress lines on stderr: rewritten in place on a terminal, sparse otherwise."""

    def __init__(self, stream: TextIO, enabled: bool):
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.last_line = 0.0
        self.prefix = ""
        self.index = 0
        self.runs = 0

    def _emit(self, text: str, final: bool = True, force: bool = False) -> None:
        """Write ``text``: on a terminal in place (``final`` ends the line); elsewhere whole
        lines, at most one every 2 s unless ``force``."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif force or (final and time.monotonic() - self.last_line > 2.0):
            self.stream.write(text + "\n")
            self.last_line = time.monotonic()
        self.stream.flush()

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "start":
            self.runs = info["runs"]
            self._emit(f"histgpu inspect: {info['runs']} run(s), {info['files']} event file(s), "
                       f"{info['bytes'] / 1e6:.1f} MB to read", force=True)
        elif kind == "run":
            self.index = info["index"]
            self.prefix = f"[{info['index'] + 1}/{info['runs']}] run {info['run']!r}"
            self._emit(f"{self.prefix}: {info['files']} file(s), {info['bytes'] / 1e6:.1f} MB ...", final=False)
        elif kind == "events":
            done = bool(info.get("final"))
            edge = done and self.index in (0, self.runs - 1)  # always show the first and the last run
            text = f"{self.prefix}: {info['events']:,} events" + ("" if done else " ...")
            self._emit(text, final=edge or (done and not self.tty) or (not self.tty), force=edge)
        elif kind == "done":
            self._emit(f"read {info['series']} histogram series from {info['events']:,} events "
                       f"in {info['seconds']:.1f} s", force=True)
        elif kind == "plot":
            i, n = info["index"] + 1, info["total"]
            self._emit(f"plotting {i}/{n}: {info['run']} / {info['tag']}", final=(i == n) or not self.tty,
                       force=i == n)


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"bad regular expression {text!r}: {e}") from None
    return text


def _os_error(e: OSError) -> str:
    """``[Errno 30] Read-only file system: 'out/plots'`` without the exception class."""
    where = f": {e.filename!r}" if e.filename else ""
    return f"{e.strerror or e}{where}"


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from histgpu.inspect.diagnose import Thresholds

    parser = argparse.ArgumentParser(prog="histgpu", description="histgpu command line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser(
        "inspect",
        help="read histogram logs, diagnose training, and draw plots",
        description=(
            "Read a TensorBoard logdir (histograms written by histgpu, tf.summary, Keras, PyTorch or "
            "tensorboardX), print one row per run/tag with the latest statistics, the trend and flags "
            "(vanishing, exploding, not learning, ...), and with --out write PNG plots and an HTML report."
        ),
    )
    p.add_argument("logdir", metavar="LOGDIR", help="TensorBoard log directory")
    p.add_argument("--out", metavar="DIR", help="write plots/, report.json and index.html here")
    p.add_argument("--tags", metavar="REGEX", type=_regex, help="only tags matching this regular expression")
    p.add_argument("--runs", metavar="REGEX", type=_regex, help="only runs matching this regular expression")
    p.add_argument("--no-plots", action="store_true", help="with --out, skip the PNG plots")
    p.add_argument("--embed-images", action="store_true", help="put the plots into index.html as data URIs")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any problem flag is raised")
    p.add_argument("-v", "--verbose", action="store_true", help="also print the evidence for trends")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output on stderr")
    s = sub.add_parser(
        "selftest",
        help="check every engine of this machine against the CPU, bit for bit",
        description=(
            "Run each CPU kernel build, the CUDA kernels emulated on the host and every usable GPU on a "
            "built-in adversarial set, and compare each with the baseline CPU build bit for bit. "
            "Exit status 0 only if every engine that ran passed."
        ),
    )
    s.add_argument("-v", "--verbose", action="store_true", help="list every failing case, not the first five")
    g = p.add_argument_group("thresholds", "when a flag is raised (the README has the same table)")
    defaults = Thresholds()
    for f in fields(Thresholds):
        is_regex = isinstance(f.default, str)
        g.add_argument(
            f.metadata["option"],
            dest=f.name,
            type=_regex if is_regex else _non_negative,
            default=getattr(defaults, f.name),
            metavar="REGEX" if is_regex else "X",
            help=f.metadata["help"] + " (default: %(default)s)",
        )
    return parser


def _inspect(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from histgpu.inspect import inspect_logdir, write_report
    from histgpu.inspect.diagnose import Thresholds
    from histgpu.inspect.patterns import RegexTimeoutError
    from histgpu.inspect.report import format_findings, format_table

    try:
        th = Thresholds(**{f.name: getattr(args, f.name) for f in fields(Thresholds)})
    except ValueError as e:
        stderr.write(f"histgpu inspect: {e}\n")
        return 2
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):  # fail before the long read
        stderr.write(f"histgpu inspect: --out {args.out!r} is a file; give a directory (created if missing)\n")
        return 2
    progress = _Progress(stderr, enabled=not args.quiet)
    try:
        result = inspect_logdir(args.logdir, tags=args.tags, runs=args.runs, thresholds=th, progress=progress)
    except (FileNotFoundError, RegexTimeoutError) as e:
        stderr.write(f"histgpu inspect: {e}\n")
        return 2

    data = result.data
    if data.problems:
        stdout.write("Read problems (the rest of the logdir was read):\n")
        stdout.writelines(f"  {p}\n" for p in data.problems)
        stdout.write("\n")
    if not result.diagnoses:
        what = "no event files" if not data.event_files else f"no histogram summaries in {data.event_files} event file(s)"
        if args.tags or args.runs:
            what += " matching --tags/--runs"
        stdout.write(f"histgpu inspect: {what} under {args.logdir}\n")
        return 1

    color = hasattr(stdout, "isatty") and stdout.isatty() and "NO_COLOR" not in os.environ
    stdout.write(format_table(result.diagnoses, color=color) + "\n")
    findings = format_findings(result.diagnoses, trends=args.verbose)
    if findings:
        stdout.write("\nEvidence:\n" + findings + "\n")
    stdout.write("\nmean/std: exact for v1 histograms (sum, sum_squares), else estimated from the buckets.\n")

    if args.out:
        try:
            paths = write_report(result, args.out, plots=not args.no_plots, embed=args.embed_images,
                                 progress=progress)
        except OSError as e:  # read-only filesystem, --out is a file, disk full, ...
            stdout.flush()
            stderr.write(f"histgpu inspect: cannot write the report to {args.out!r}: {_os_error(e)}\n")
            return 2
        if "note" in paths:
            stderr.write(f"histgpu inspect: {paths['note']}\n")
        stdout.write(f"report: {paths['html']}\n")
    else:
        stdout.write("(add --out DIR for plots and an HTML report)\n")
    stdout.flush()
    return 1 if args.strict and result.has_problems else 0


def main(argv: Optional[List[str]] = None, stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Entry point of the ``histgpu`` console script.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).
    stdout, stderr : file, optional
        Where the report and the progress go (default the process streams).

    Returns
    -------
    int
        Exit status.
    """
    if argv is None:
        # Run as the program: TensorBoard's record reader imports TensorFlow when it is
        # installed, and this process only reads files, so TensorFlow's start-up notices
        # are noise. (Not done when called as a function: the caller's TF is its own.)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    args = build_parser().parse_args(argv)
    if args.command == "inspect":
        return _inspect(args, stdout or sys.stdout, stderr or sys.stderr)
    if args.command == "selftest":
        from histgpu.selftest import run

        return run(stdout or sys.stdout, verbose=args.verbose)
    return 2  # pragma: no cover - argparse enforces a known command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
