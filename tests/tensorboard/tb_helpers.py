"""Shared helpers for the tests/tensorboard/test_*.py suites: oracles, TensorBoard's own reading
stack, a real TensorBoard server, and a headless Chromium driven over WebDriver.

Everything that starts a process bounds it in time and stops it in a ``finally``.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from fractions import Fraction
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

# --------------------------------------------------------------------------- oracles


def tf_default_limits() -> np.ndarray:
    """TensorFlow's default v1 bucket limits, rebuilt the way histogram.cc builds them."""
    pos: List[float] = []
    v = 1.0e-12
    while v < 1.0e20:
        pos.append(v)
        v *= 1.1
    pos.append(float(np.finfo(np.float64).max))
    return np.array([-x for x in reversed(pos)] + [0.0] + pos)


def tf_v1_histo(values: np.ndarray):
    """TensorFlow's own HistogramSummary op (the oracle of docs/semantics.md §1.3) -> HistogramProto."""
    import tensorflow as tf
    from tensorboard.compat.proto import summary_pb2
    from tensorflow.python.ops import gen_logging_ops

    serialized = gen_logging_ops.histogram_summary("t", tf.constant(values))
    return summary_pb2.Summary.FromString(serialized.numpy()).value[0].histo


def _round_fraction(f: Fraction) -> float:
    try:
        return float(f)  # int / int in CPython is correctly rounded
    except OverflowError:
        return math.inf if f > 0 else -math.inf


def exact_sum(x: np.ndarray) -> float:
    """Exact sum of float64 values, rounded once (overflow -> +-inf)."""
    return _round_fraction(sum((Fraction(v) for v in np.asarray(x, np.float64).tolist()), Fraction(0)))


def exact_sum_squares(x: np.ndarray) -> float:
    """Exact sum of exact squares, rounded once (x*x in float64 is not exact)."""
    return _round_fraction(sum((Fraction(v) ** 2 for v in np.asarray(x, np.float64).tolist()), Fraction(0)))


def same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def tb_buckets(values: Any, k: Optional[int] = None) -> np.ndarray:
    """TensorBoard's own v2 bucketing (summary_v2._buckets) of ``values``."""
    import tensorflow as tf
    from tensorboard.plugins.histogram import summary_v2

    return summary_v2._buckets(tf.constant(values), k).numpy()


def migrate_v1(histo) -> np.ndarray:
    """What TensorBoard shows for a v1 HistogramProto (its data_compat migration)."""
    from tensorboard import data_compat
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    value = summary_pb2.Summary.Value(tag="t", histo=histo)
    migrated = data_compat.migrate_value(value)
    return tensor_util.make_ndarray(migrated.tensor)


def migrate_v1_data_server(histo, dtype=np.float64) -> np.ndarray:
    """What TensorBoard's Rust data server (``--load_fast``, the default) serves for a v1 proto.

    Unlike the Python ``data_compat`` it keeps every bucket: left edges are ``min`` and then
    the limits, right edges the limits and then ``max`` (so the outer buckets may be empty).
    """
    limits = list(histo.bucket_limit)
    lefts = [histo.min] + limits[:-1]
    rights = limits[:-1] + [histo.max]
    return np.array([lefts, rights, list(histo.bucket)], dtype=dtype).T.astype(np.float64)


# --------------------------------------------------------------- TensorBoard's reading stack


def event_files(logdir: str) -> List[str]:
    return sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True))


def read_events(path: str) -> List[Any]:
    """All events of one run directory (or file), read with TensorBoard's event-file loader."""
    from tensorboard.backend.event_processing import event_file_loader

    files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "events.out.tfevents.*")))
    out: List[Any] = []
    for f in files:
        out.extend(event_file_loader.LegacyEventFileLoader(f).Load())
    return out


def summary_values(path: str) -> List[Tuple[int, Any]]:
    """``(step, Summary.Value)`` for every summary value written under ``path``, in order."""
    return [(e.step, v) for e in read_events(path) if e.HasField("summary") for v in e.summary.value]


def comparable(value) -> Any:
    """A Summary.Value with the parts that must match (wall time lives in the Event)."""
    return value.SerializeToString(deterministic=True)


class TBReader:
    """A logdir as TensorBoard's backend sees it: multiplexer -> data provider -> plugins."""

    def __init__(self, logdir: str):
        from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
        from tensorboard.plugins import base_plugin
        from tensorboard.plugins.histogram import histograms_plugin
        from tensorboard.plugins.scalar import scalars_plugin

        self.multiplexer = plugin_event_multiplexer.EventMultiplexer(
            size_guidance={"tensors": 0}, tensor_size_guidance={"histograms": 0, "scalars": 0}
        )
        self.multiplexer.AddRunsFromDirectory(logdir)
        self.multiplexer.Reload()
        self.provider = data_provider.MultiplexerDataProvider(self.multiplexer, logdir)
        ctx = base_plugin.TBContext(logdir=logdir, data_provider=self.provider, multiplexer=self.multiplexer)
        self.histograms = histograms_plugin.HistogramsPlugin(ctx)
        self.scalars = scalars_plugin.ScalarsPlugin(ctx)
        from tensorboard import context

        self.ctx = context.RequestContext()

    def histogram_tags(self) -> Dict[str, Dict[str, Any]]:
        return {r: t for r, t in self.histograms.index_impl(self.ctx, experiment="").items() if t}

    def histogram_series(self, run: str, tag: str) -> List[Tuple[int, np.ndarray]]:
        """``[(step, [k, 3] array)]`` exactly as the histograms plugin serves it (no downsampling)."""
        events, _ = self.histograms.histograms_impl(self.ctx, tag, run, experiment="", downsample_to=10**6)
        return [(step, np.array(buckets, dtype=np.float64).reshape(-1, 3)) for _, step, buckets in events]

    def scalar_series(self, run: str, tag: str) -> List[Tuple[int, float]]:
        data = self.provider.read_scalars(
            self.ctx,
            experiment_id="",
            plugin_name="scalars",
            downsample=10**6,
            run_tag_filter=__import__("tensorboard.data.provider", fromlist=["x"]).RunTagFilter([run], [tag]),
        )
        return [(d.step, d.value) for d in data.get(run, {}).get(tag, [])]


# ------------------------------------------------------------------- a real TensorBoard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


class TensorBoardServer:
    """``tensorboard --logdir <dir> --host 127.0.0.1 --port <free>`` as a subprocess."""

    def __init__(self, logdir: str, start_timeout: float = 90.0):
        self.logdir = logdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="tensorboard-", suffix=".log", delete=False)
        cmd = [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            logdir,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--reload_interval",
            "1",
        ]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited with {self.proc.returncode}:\n{self.output()}")
            try:
                http_json(self.url + "/data/runs", timeout=2)
                return
            except (OSError, ValueError):
                time.sleep(0.3)
        raise TimeoutError(f"tensorboard not ready after {timeout}s:\n{self.output()}")

    def get(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return http_json(self.url + path + query)

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "data") -> Any:
        """Poll until ``predicate()`` returns something truthy (the logdir loads asynchronously)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except (OSError, ValueError, KeyError) as e:  # 404 until the tag is loaded
                last = e
            time.sleep(0.5)
        raise TimeoutError(f"tensorboard never served {what}; last: {last!r}\n{self.output()}")

    def output(self) -> str:
        try:
            with open(self.log.name, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


# ------------------------------------------------------------- headless Chromium (WebDriver)


def find_chromium() -> Tuple[Optional[str], Optional[str]]:
    """``(browser, chromedriver)`` paths, or None where absent."""
    browser = next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    driver = shutil.which("chromedriver")
    return browser, driver


class Chromium:
    """Headless Chromium driven through chromedriver's W3C WebDriver HTTP API (stdlib only)."""

    def __init__(self, browser: str, driver: str, width: int = 1400, height: int = 1000):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.session: Optional[str] = None
        self.profile = tempfile.mkdtemp(prefix="histgpu-chromium-")
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    self._call("GET", "/status")
                    break
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.2)
            args = [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
            ]
            caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": browser, "args": args}}}}
            self.session = self._call("POST", "/session", caps)["sessionId"]
        except BaseException:
            self.close()
            raise

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read().decode() or "null").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read().decode(errors='replace')[:2000]}") from None

    def get(self, url: str) -> None:
        self._call("POST", f"/session/{self.session}/url", {"url": url})

    def execute(self, script: str, *args: Any) -> Any:
        return self._call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path: str) -> None:
        png = base64.b64decode(self._call("GET", f"/session/{self.session}/screenshot"))
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)

    def close(self) -> None:
        try:
            if self.session:
                with contextlib.suppress(Exception):
                    self._call("DELETE", f"/session/{self.session}", timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)


# Text of the page including every (open) shadow root: TensorBoard's dashboards are
# Polymer/Angular components whose content lives in shadow DOM.
DEEP_TEXT_JS = r"""
const out = [];
const seen = new Set();
function walk(node) {
  if (!node || seen.has(node)) return;
  seen.add(node);
  if (node.nodeName === 'STYLE' || node.nodeName === 'SCRIPT') return;
  if (node.nodeType === Node.TEXT_NODE) {
    const t = node.textContent.trim();
    if (t) out.push(t);
    return;
  }
  if (node.shadowRoot) walk(node.shadowRoot);
  if (node.tagName === 'IFRAME') {
    try { walk(node.contentDocument); } catch (e) {}
  }
  for (const c of node.childNodes) walk(c);
}
walk(document);
return out.join('\n');
"""

# Count of rendered histogram charts (SVG paths drawn by the histogram component).
DEEP_COUNT_JS = r"""
const sel = arguments[0];
let n = 0;
const seen = new Set();
function walk(node) {
  if (!node || seen.has(node)) return;
  seen.add(node);
  if (node.nodeType === Node.ELEMENT_NODE && node.matches(sel)) n += 1;
  if (node.shadowRoot) walk(node.shadowRoot);
  if (node.tagName === 'IFRAME') { try { walk(node.contentDocument); } catch (e) {} }
  for (const c of node.childNodes) walk(c);
}
walk(document);
return n;
"""


def wait_until(fn, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


def iter_chunks(seq: List[Any], n: int) -> Iterator[List[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
