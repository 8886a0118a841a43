"""The HTML report opens in a real browser and its charts are drawn.

Headless Chromium takes a screenshot of the report; the PNG must not be blank and must hold the
charts' bar colour in quantity (text and tables alone have none of it). Chromium is required:
when it is missing the test FAILS with the install command, it does not skip (CI installs it).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from fitiq_rt.logreport import analyze, write_html


def _load_generator() -> Callable[..., None]:
    """benchmarks/ is not an installed package: load the generator from its file, so the test
    does not depend on the repository root being on sys.path."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "logs_bench.py"
    spec = importlib.util.spec_from_file_location("fitiq_logs_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module.generate_log


generate_log = _load_generator()


_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_BAR_RGB = np.array([0x1F, 0x77, 0xB4]) / 255  # logreport.charts' bar colour


def _chromium() -> str:
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Chromium is required for the HTML report test and was not found on PATH "
        f"(tried {', '.join(_BROWSERS)}). Install it: apt-get install -y chromium",
        pytrace=False,
    )


def _screenshot(page: Path, png: Path, profile: Path) -> None:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1200,2000",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.exists(), f"chromium wrote no screenshot (rc={done.returncode}):\n{done.stderr}"


def test_html_report_renders_its_charts_in_chromium(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    generate_log(log, lines=30_000, users=300, seed=5)
    report = analyze([str(log)])
    page = tmp_path / "report.html"
    write_html(report, page)
    text = page.read_text()
    for chart in ("session-durations", "latency", "connections"):
        assert f"id='chart-{chart}'" in text

    png = tmp_path / "report.png"
    _screenshot(page, png, tmp_path / "profile")
    pixels = imread(png)[..., :3]  # RGB floats 0..1
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000

    flat = pixels.reshape(-1, 3)
    assert len(np.unique((flat * 255).astype(np.uint8), axis=0)) > 50, "screenshot is blank"
    bar_pixels = np.all(np.abs(flat - _BAR_RGB) < 0.08, axis=1).sum()
    assert bar_pixels > 20_000, f"charts not drawn: only {bar_pixels} bar-coloured pixels"
