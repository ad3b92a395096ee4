"""Subprocess entry point: runs the cases of ONE method of ONE scenario.

    python -m benchmarks._worker SCENARIO METHOD SPEC.json

Started by :mod:`benchmarks._runner`, never by hand. ``SPEC.json`` holds ``{"cases": [...],
"settings": {...}}``. The scenario module's ``run_worker(method, cases, settings, emit)`` does
the work; every line this process means for the parent goes through :func:`emit`, prefixed
with :data:`MARK` so that whatever libraries print on stdout cannot be mistaken for a result.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any, Dict

MARK = "@@histgpu-bench "

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def emit(event: Dict[str, Any]) -> None:
    """Send one event (``{"event": "start"|"result", "id": ..., ...}``) to the parent."""
    sys.stdout.write(MARK + json.dumps(event, default=float) + "\n")
    sys.stdout.flush()


def main(argv: Any = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    scenario, method, spec_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    # A bare name is one of the suite's scenarios; a dotted name any importable module (tests).
    module = importlib.import_module(scenario if "." in scenario else f"benchmarks.scenarios.{scenario}")
    module.run_worker(method, spec["cases"], spec.get("settings", {}), emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
