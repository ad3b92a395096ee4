"""The HTML report and its PNG plots: every plot exists, decodes, and loads in headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import pathlib
import re
import shutil

import pytest

from histgpu import cli

from ..tensorboard import tb_helpers as H
from . import synth as S

PIL = pytest.importorskip("PIL.Image", reason="Pillow is needed to decode the plots")
pytest.importorskip("matplotlib", reason="matplotlib is needed for the plots (pip install matplotlib)")

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PATTERNS = ("healthy", "vanishing", "exploding", "frozen")
N_SERIES = 5  # healthy has weights and gradients; the others one tag each


def _inspect(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["inspect", *argv, "-q"], stdout=out, stderr=err) == 0, err.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect-report")
    S.write_histgpu(str(root / "logs"), PATTERNS, bins=30)
    cwd = os.getcwd()
    os.chdir(root)  # relative paths, as a person types them (and as the README picture shows)
    try:
        _inspect("logs", "--out", "linked")
        _inspect("logs", "--out", "embedded", "--embed-images")
    finally:
        os.chdir(cwd)
    return root / "linked", root / "embedded"


def _img_srcs(html: str):
    return re.findall(r'<img src="([^"]+)"', html)


def _decode(data: bytes):
    img = PIL.open(io.BytesIO(data))
    img.load()
    return img


def test_linked_plots_exist_and_decode(reports):
    linked, _ = reports
    html = (linked / "index.html").read_text()
    srcs = _img_srcs(html)
    assert len(srcs) == 2 * N_SERIES
    assert sum(s.endswith("_ridge.png") for s in srcs) == N_SERIES
    for src in srcs:
        assert not src.startswith(("/", "http")), src  # relative: the report folder can move
        img = _decode((linked / src).read_bytes())
        assert img.format == "PNG" and img.width >= 400 and img.height >= 300
    # No external resources: nothing to fetch from a network.
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for word in ("vanishing", "exploding", "not learning"):
        assert f'<span class="flag problem">{word}</span>' in html


def test_embedded_plots_decode(reports):
    _, embedded = reports
    srcs = _img_srcs((embedded / "index.html").read_text())
    assert len(srcs) == 2 * N_SERIES
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert _decode(base64.b64decode(src.split(",", 1)[1])).format == "PNG"


@pytest.fixture(scope="module")
def browser():
    path, driver = H.find_chromium()
    if not path or not driver:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium chromium-driver)")
    c = H.Chromium(path, driver, width=1500, height=1400)
    try:
        yield c
    finally:
        c.close()


IMAGES_JS = r"""
return Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 80), i.complete, i.naturalWidth, i.naturalHeight]);
"""


@pytest.mark.parametrize("which", ["linked", "embedded"])
def test_every_plot_loads_in_chromium(reports, browser, which, tmp_path):
    folder = reports[0] if which == "linked" else reports[1]
    browser.get((folder / "index.html").as_uri())
    H.wait_until(lambda: browser.execute("return document.readyState") == "complete", timeout=30)
    images = H.wait_until(lambda: (lambda im: im if im and all(c for _, c, _, _ in im) else None)(
        browser.execute(IMAGES_JS)), timeout=30) or browser.execute(IMAGES_JS)
    assert len(images) == 2 * N_SERIES
    broken = [src for src, complete, w, h in images if not (complete and w > 0 and h > 0)]
    assert not broken, f"plots that did not load: {broken}"
    text = browser.execute("return document.body.innerText")
    for word in ("vanishing", "exploding", "not learning", "Thresholds"):
        assert word in text
    shot = tmp_path / "report.png"
    browser.screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    if which == "linked":
        _refresh_docs(folder, shot)


def test_chromium_check_sees_a_missing_plot(reports, browser, tmp_path):
    """The check above is not vacuous: a deleted PNG shows up as a broken image."""
    copy = tmp_path / "report"
    shutil.copytree(reports[0], copy)
    victim = sorted((copy / "plots").glob("*.png"))[0]
    victim.unlink()
    browser.get((copy / "index.html").as_uri())
    H.wait_until(lambda: browser.execute("return document.readyState") == "complete", timeout=30)
    images = browser.execute(IMAGES_JS)
    broken = [src for src, complete, w, h in images if not (complete and w > 0)]
    assert broken == [f"plots/{victim.name}"]


def _refresh_docs(folder: pathlib.Path, shot: pathlib.Path) -> None:
    """Pictures for the README (written when missing, or with HISTGPU_UPDATE_SCREENSHOT=1)."""
    wanted = {
        DOCS / "inspect_report.png": shot,
        DOCS / "inspect_bands.png": next((folder / "plots").glob("exploding__dense_kernel_grad_*_bands.png")),
        DOCS / "inspect_ridge.png": next((folder / "plots").glob("vanishing__dense_kernel_grad_*_ridge.png")),
    }
    for dest, src in wanted.items():
        if not dest.exists() or os.environ.get("HISTGPU_UPDATE_SCREENSHOT") == "1":
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(src, dest)
