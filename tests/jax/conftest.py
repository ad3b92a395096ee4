"""JAX with 8 host CPU devices for tests/jax, without touching the rest of the suite.

XLA reads ``--xla_force_host_platform_device_count`` when JAX creates its CPU backend, once per
process. pytest imports this file while collecting, before any test runs (in particular before
tests/cuda imports JAX), so the flag is set here, the CPU backend is created at once, and
``XLA_FLAGS`` is put back as it was: no subprocess of another test sees it. The multi-process
test starts its own workers with their own flags.
"""
from __future__ import annotations

import os

import pytest

N_DEVICES = 8
FLAG = f"--xla_force_host_platform_device_count={N_DEVICES}"


def _cpu_devices():
    try:
        import jax
    except ImportError:
        return None
    old = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{old} {FLAG}" if old else FLAG
    try:
        return jax.devices("cpu")
    finally:
        if old is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = old


_DEVICES = _cpu_devices()


@pytest.fixture(scope="session")
def cpus():
    """The 8 host CPU devices."""
    if _DEVICES is None:
        pytest.skip("jax is not installed (it is a test dependency: make test installs it)")
    if len(_DEVICES) < N_DEVICES:
        pytest.fail(f"JAX has {len(_DEVICES)} CPU devices: it was initialised before tests/jax/conftest.py set {FLAG}")
    return _DEVICES[:N_DEVICES]


@pytest.fixture
def x64():
    """jax_enable_x64 on for one test (float64 and int64 arrays), off again after it."""
    import jax

    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)
