"""Shared fixtures of the histgpu test suite (oracles live next to the tests that use them)."""

import os

# Quiet TensorFlow's C++ logging before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, imported once for the whole session."""
    import tensorflow as tf

    return tf


@pytest.fixture(scope="session")
def histgpu():
    import histgpu

    return histgpu


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's node id, so every test sees fixed data."""
    import zlib

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
