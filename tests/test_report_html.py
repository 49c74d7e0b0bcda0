"""The HTML report is self-contained, shows the summary and plots, and renders in a real browser."""

import re
import shutil
import subprocess

import pytest
from PIL import Image

from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.reporting._html import render_html, write_html
from pytest_kernelbias.reporting._json import environment

from .conftest import tiny_cnn


@pytest.fixture(scope="module")
def record():
    result = run_audit(tiny_cnn, "0", [3, 5], data=synthfaces(300, 0, "planted"),
                       test_data=synthfaces(200, 0, "planted", split="test"), seeds=2,
                       perturbation=LowPass.sweep([0.6, 0.4]), train_config=TrainConfig(epochs=1, batch_size=32),
                       heat_map=dict(eps=4.0, step=8, images=16), progress=None,
                       require_learning=False)  # one epoch: near chance, but every plot still has data
    return {**result.to_dict(), "test": "demo.py::test_audit", "test_outcome": "passed"}


def test_report_is_self_contained_with_summary_and_every_plot(record):
    text = render_html([record], environment(), {"seeds": 2})
    assert "kernel audit report" in text.lower() and "demo.py::test_audit" in text
    assert not re.search(r"""(src|href)=['"]https?:""", text)  # nothing fetched from the network
    titles = ["Effects against the threshold", "Metric against perturbation, per level", "Drops by subgroup and level",
              "Kernel spectra per level", "Fourier heat maps per subgroup", "Example perturbed images"]
    for title in titles:
        assert title in text
    assert text.count("src='data:image/png;base64,") == len(titles)
    assert "Placebo checks" in text and "not proof of a bug" in text


def test_report_folder_is_created(tmp_path, record):
    target = write_html(tmp_path / "deep" / "er" / "report.html", [record], environment(), {})
    assert target.exists() and target.stat().st_size > 10_000


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def test_report_renders_in_headless_chromium(tmp_path, record):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium) to render the report")
    page = write_html(tmp_path / "report.html", [record], environment(), {})
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2400",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    img = Image.open(shot).convert("L")
    colours = img.getcolors(maxcolors=1 << 16) or []
    # A blank page is one colour; a rendered report has text and plots in many shades.
    assert len(colours) > 50
