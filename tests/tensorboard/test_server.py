"""Proof by TensorBoard itself: one logdir holding every way histgpu writes histograms, read
back by TensorBoard's backend in-process, by a real ``tensorboard`` server over HTTP, and by
headless Chromium on the Histograms dashboard.

One logdir and one server per module keep the suite short.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import pathlib
import re
import urllib.parse
import warnings
from typing import Dict, List, Tuple

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import histgpu  # noqa: E402
import histgpu.summary as hsummary  # noqa: E402
from histgpu.writer import SummaryWriter  # noqa: E402

from . import tb_helpers as H  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")

REPO = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "tensorboard_histograms.png"

Series = List[Tuple[int, np.ndarray]]
# (run, tag) -> [(step, TF's HistogramProto)] for the v1-format tags.
V1_PROTOS: Dict[Tuple[str, str], list] = collections.defaultdict(list)


def _load_example():
    spec = importlib.util.spec_from_file_location("train_keras_example", REPO / "examples" / "train_keras.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(seed: int, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * (1 + seed)).astype(np.float32)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Tuple[str, Dict[Tuple[str, str], Series], Dict[Tuple[str, str], list]]:
    """Write every run; return the logdir, expected histograms and expected scalars."""
    root = tmp_path_factory.mktemp("tb_logdir")
    expected: Dict[Tuple[str, str], Series] = {}
    scalars: Dict[Tuple[str, str], list] = {}

    def expect(run: str, tag: str, step: int, table: np.ndarray) -> None:
        expected.setdefault((run, tag), []).append((step, np.asarray(table, np.float64)))

    def expect_v1(run: str, tag: str, step: int, values: np.ndarray) -> None:
        histo = H.tf_v1_histo(values)  # TF's own op is the oracle of the v1 proto
        expect(run, tag, step, H.migrate_v1(histo))
        V1_PROTOS[(run, tag)].append((step, histo))

    def expect_torch(run: str, tag: str, step: int, values: np.ndarray) -> None:
        """The writer's default is PyTorch's layout: PyTorch's own code is the oracle."""
        from torch.utils.tensorboard.summary import make_histogram

        from histgpu._torch_layout import default_bins

        histo = make_histogram(np.asarray(values, np.float64), list(default_bins()))
        expect(run, tag, step, H.migrate_v1(histo))
        V1_PROTOS[(run, tag)].append((step, histo))

    # The demo: examples/train_keras.py, as `make demo` runs it.
    _load_example().train(str(root / "demo"), epochs=10, seed=0)
    for step, value in H.summary_values(str(root / "demo")):
        from tensorboard.util import tensor_util

        expect("demo", value.tag, step, tensor_util.make_ndarray(value.tensor))

    # v2 drop-in: eager, name scope, set_step, tf.function, record_if(False).
    w = tf.summary.create_file_writer(str(root / "summary_v2"))
    with w.as_default():
        for step in range(3):
            x = _data(step)
            with tf.name_scope("eager"):
                assert bool(hsummary.histogram("normal", x, step=step))
            expect("summary_v2", "eager/normal", step, H.tb_buckets(x))
        tf.summary.experimental.set_step(7)
        try:
            hsummary.histogram("set_step", _data(5), buckets=12)
        finally:
            tf.summary.experimental.set_step(None)
        expect("summary_v2", "set_step", 7, H.tb_buckets(_data(5), 12))

        @tf.function
        def in_graph(v, s):
            return hsummary.histogram("graph/normal", v, step=s, buckets=20)

        for step in range(2):
            assert bool(in_graph(tf.constant(_data(10 + step)), tf.constant(step, tf.int64)))
            expect("summary_v2", "graph/normal", step, H.tb_buckets(_data(10 + step), 20))
        with tf.summary.record_if(False):
            assert not bool(hsummary.histogram("not_recorded", _data(1), step=0))
    w.close()

    # v1 HistogramProto through TF's writer.
    w = tf.summary.create_file_writer(str(root / "summary_v1"))
    with w.as_default():
        for step in range(2):
            x = _data(20 + step)
            assert bool(hsummary.histogram_v1("v1/normal", x, step=step))
            expect_v1("summary_v1", "v1/normal", step, x)
    w.close()

    # TF-free writer, both formats.
    with SummaryWriter(str(root / "writer")) as sw:
        for step in range(2):
            x = _data(30 + step)
            sw.add_histogram("writer/v1", x, global_step=step)
            sw.add_histogram("writer/v2", x, global_step=step, bins=15, layout="v2")
            expect_torch("writer", "writer/v1", step, x)
            expect("writer", "writer/v2", step, H.tb_buckets(x, 15))

    # Non-finite values: buckets of the finite part, plus companion scalars.
    bad = _data(40)
    bad[:5] = np.nan
    bad[5:8] = np.inf
    bad[8:9] = -np.inf
    finite = bad[np.isfinite(bad)]
    w = tf.summary.create_file_writer(str(root / "nonfinite"))
    with w.as_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
        hsummary.histogram("nan/v2", bad, step=1)
        hsummary.histogram_v1("nan/v1", bad, step=1)
    w.close()
    with SummaryWriter(str(root / "nonfinite")) as sw, warnings.catch_warnings():
        warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
        sw.add_histogram("nan/writer", bad, global_step=1, bins=30, layout="v2")
    expect("nonfinite", "nan/v2", 1, H.tb_buckets(finite))
    expect_v1("nonfinite", "nan/v1", 1, finite)
    expect("nonfinite", "nan/writer", 1, H.tb_buckets(finite))
    for tag in ("nan/v2", "nan/v1", "nan/writer"):
        for suffix, count in zip(hsummary.NONFINITE_SUFFIXES, (5, 3, 1)):
            scalars[("nonfinite", f"{tag}/{suffix}")] = [(1, float(count))]
    return str(root), expected, scalars


def _check_series(got: Series, want: Series, what: str) -> None:
    assert [s for s, _ in got] == [s for s, _ in want], what
    for (step, g), (_, w) in zip(got, want):
        assert g.shape == w.shape, (what, step)
        assert np.array_equal(g, w), (what, step, g, w)


# ------------------------------------------------------------------ in-process reading


def test_backend_reads_every_histogram(logdir):
    root, expected, _ = logdir
    reader = H.TBReader(root)
    tags = reader.histogram_tags()
    want_tags: Dict[str, set] = {}
    for run, tag in expected:
        want_tags.setdefault(run, set()).add(tag)
    assert {r: set(t) for r, t in tags.items()} == want_tags
    for (run, tag), series in expected.items():
        _check_series(reader.histogram_series(run, tag), series, f"{run}/{tag}")


def test_backend_nonfinite_scalars(logdir):
    root, _, scalars = logdir
    reader = H.TBReader(root)
    for (run, tag), series in scalars.items():
        assert reader.scalar_series(run, tag) == series, tag


# ---------------------------------------------------------------- a real TensorBoard


@pytest.fixture(scope="module")
def server(logdir):
    root, expected, _ = logdir
    srv = H.TensorBoardServer(root)
    try:
        n_tags = len(expected)
        srv.wait_for(
            lambda: sum(len(t) for t in srv.get("/data/plugin/histograms/tags").values()) >= n_tags,
            timeout=90,
            what=f"{n_tags} histogram tags",
        )
        yield srv
    finally:
        srv.stop()


def test_http_tags(server, logdir):
    _, expected, _ = logdir
    tags = server.get("/data/plugin/histograms/tags")
    got = {(run, tag) for run, t in tags.items() for tag in t}
    assert got == set(expected)
    assert "not_recorded" not in str(tags)


def test_http_histograms(server, logdir):
    _, expected, _ = logdir
    for (run, tag), series in expected.items():
        body = server.get("/data/plugin/histograms/histograms", run=run, tag=tag)
        got = [(step, np.array(b, dtype=np.float64).reshape(-1, 3)) for _, step, b in body]
        if (run, tag) in V1_PROTOS:
            # v1 protos are converted by the server: its Rust data server keeps every bucket
            # in float64; the Python fallback (no data server) drops empty outer buckets and
            # rounds to float32. Either must match exactly.
            rust = [(s, H.migrate_v1_data_server(h)) for s, h in V1_PROTOS[(run, tag)]]
            python = [(s, t.astype(np.float32).astype(np.float64)) for s, t in series]
            try:
                _check_series(got, rust, f"http {run}/{tag}")
            except AssertionError:
                _check_series(got, python, f"http {run}/{tag}")
        else:
            _check_series(got, series, f"http {run}/{tag}")


def test_http_nonfinite_scalars(server, logdir):
    _, _, scalars = logdir
    tags = server.get("/data/plugin/scalars/tags")
    for (run, tag), series in scalars.items():
        assert tag in tags.get(run, {}), tag
        body = server.get("/data/plugin/scalars/scalars", run=run, tag=tag)
        assert [(step, value) for _, step, value in body] == series


# ------------------------------------------------------------------ a real browser


@pytest.fixture(scope="module")
def browser():
    path, driver = H.find_chromium()
    if not path or not driver:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium chromium-driver)")
    c = H.Chromium(path, driver)
    try:
        yield c
    finally:
        c.close()


def _rendered(browser, tags) -> bool:
    text = browser.execute(H.DEEP_TEXT_JS) + "\n"
    return all(f"tag:\n{tag}\n" in text for tag in tags)  # each card's "tag: <name>" caption


def test_browser_histograms_dashboard(server, logdir, browser, tmp_path):
    _, expected, _ = logdir
    wanted = sorted({tag for _, tag in expected})
    # Categories are collapsed beyond the first few; a tag filter opens a "Tags matching"
    # category, so look at the tags a few at a time (below TensorBoard's page size).
    for chunk in H.iter_chunks(wanted, 5):
        pattern = "^(" + "|".join(re.escape(t) for t in chunk) + ")$"
        browser.get(server.url + "/#histograms&tagFilter=" + urllib.parse.quote(pattern, safe=""))
        ok = H.wait_until(lambda: _rendered(browser, chunk), timeout=60)  # noqa: B023 - called here
        assert ok, f"tags {chunk} not rendered; page text: {browser.execute(H.DEEP_TEXT_JS)[-1500:]}"
        # Each card holds a histogram chart component.
        charts = H.wait_until(lambda: browser.execute(H.DEEP_COUNT_JS, "tf-histogram-loader"), timeout=30)
        assert charts >= len(chunk)

    # The README picture: the demo's three histograms.
    browser.get(server.url + "/#histograms&tagFilter=layer1")
    H.wait_until(lambda: _rendered(browser, ["layer1_weights", "layer1_biases", "layer1_gradients"]), timeout=60)
    H.wait_until(lambda: browser.execute(H.DEEP_COUNT_JS, "path") > 20, timeout=30)
    shot = tmp_path / "tensorboard_histograms.png"
    browser.screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if not SCREENSHOT.exists() or os.environ.get("HISTGPU_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot.read_bytes())


def test_browser_shows_nonfinite_scalars(server, browser):
    browser.get(server.url + "/#scalars&tagFilter=nonfinite")
    text = H.wait_until(
        lambda: (lambda t: t if "nan/v2/nonfinite/nan" in t else None)(browser.execute(H.DEEP_TEXT_JS)), timeout=60
    )
    assert text, "non-finite companion scalars not rendered in the Scalars dashboard"
