"""The suite's scenarios, in the order ``python -m benchmarks`` runs them.

Each module has ``NAME``, ``TITLE`` and ``run(ctx) -> dict`` (the parent side: plan the cases,
run them through :mod:`benchmarks._runner`, write its markdown/JSON/PNG files, and return a
summary for the index); modules with per-method subprocesses also have ``run_worker``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Dict

from benchmarks.scenarios import cpu, cpu_roofline, gpu, training, training_large

SCENARIOS: Dict[str, ModuleType] = {
    m.NAME: m for m in (cpu, cpu_roofline, training, training_large, gpu)
}
