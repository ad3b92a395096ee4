"""What the suite hands each scenario: options, output folder, machine info, progress printing."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional


@dataclass
class Context:
    """Run-wide settings for the scenarios.

    Attributes
    ----------
    full : bool
        The full sweep (``make bench FULL=1``) instead of the reduced default.
    out_dir : Path
        Where results are written (``benchmarks/results`` by default).
    info : dict
        :func:`benchmarks._report.machine_info` of this machine.
    command : str
        The command line, quoted in every report.
    options : dict
        Overrides from the command line (``sizes``, ``dtypes``, ``buckets``, ``methods``,
        ``variants``, ``mem_cap_gib``, ``plots``, ...); a missing key means the default.
    """

    full: bool
    out_dir: Path
    info: Dict[str, Any]
    command: str
    options: Dict[str, Any] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    @property
    def suffix(self) -> str:
        """File-name suffix of this run's results: ``""`` (reduced default) or ``"_full"``."""
        return "_full" if self.full else ""

    def option(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name)
        return default if value is None else value

    def progress(self, scenario: str, text: str, step: Optional[str] = None) -> None:
        """One progress line on stderr: elapsed time, scenario, step counter, text."""
        el = int(time.monotonic() - self.t0)
        prefix = f"[{el // 60:2d}:{el % 60:02d} {scenario}{' ' + step if step else ''}]"
        print(f"{prefix} {text}", file=sys.stderr, flush=True)
