"""The HTML report read in a real browser: headless Chromium at 1280 px lays it out without clipping or
sideways scrolling, and shows one verdict card per audit on the first screen (issue 15)."""

import html
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from pytest_kernelbias import LowPass, TrainConfig, run_audit, synthfaces
from pytest_kernelbias.reporting._html import write_html
from pytest_kernelbias.reporting._json import environment

from .conftest import tiny_cnn

WIDTH = 1280
LONG_ID = ("example_audits/test_synthfaces_audits.py::test_planted_synthfaces_kernel_bias_is_caught"
           "[mobilenetv3_small_050-blocks.0.0.conv_dw]")

# Runs once the page has loaded and writes what it measured into the page, where --dump-dom shows it.
# An element is clipped (or scrolls sideways) when its content is wider than its box, and too wide when
# its box reaches past its parent's content box; the page must be no wider than the window.
PROBE = r"""<script>
window.addEventListener('load', function () {
  var out = {page: document.documentElement.scrollWidth, window: window.innerWidth, bad: [], cards: []};
  document.querySelectorAll('.cards .ov h3').forEach(function (h) { out.cards.push(h.textContent); });
  document.querySelectorAll('body *').forEach(function (el) {
    var r = el.getBoundingClientRect(), cs = getComputedStyle(el), why = '';
    if (!r.width && !r.height) return;
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
      why = cs.overflowX === 'visible' ? 'content spills out' : 'clips or scrolls sideways';
    var p = el.parentElement;
    if (!why && p && p !== document.documentElement && cs.position !== 'absolute') {
      var pr = p.getBoundingClientRect(), ps = getComputedStyle(p);
      if (r.right > pr.right - parseFloat(ps.paddingRight) - parseFloat(ps.borderRightWidth) + 1)
        why = 'wider than its container';
    }
    if (!why && r.right > window.innerWidth + 1) why = 'past the window';
    if (why) out.bad.push({tag: el.tagName, cls: String(el.className), why: why, width: Math.round(r.width),
                           text: (el.textContent || '').slice(0, 80)});
  });
  var pre = document.createElement('pre');
  pre.id = 'layout-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture(scope="module")
def browser():
    found = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if found is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium) to lay out the HTML report")
    return found


@pytest.fixture(scope="module")
def records(browser):
    """Three audit records from two small real audits: an intersectional three-level audit with both
    placebos (dose-response, A/A), and a two-level one with heat maps under a long parametrized test id."""
    train = TrainConfig(epochs=1, batch_size=32)
    wide = run_audit(tiny_cnn, "0", [3, 5, 7], data=synthfaces(300, 0, "planted"),
                     test_data=synthfaces(240, 0, "planted", split="test"), attributes=["skin_tone", "gender"],
                     perturbation=LowPass.sweep([0.6, 0.4]), seeds=2, train_config=train, placebos=("shuffle", "aa"),
                     min_group_size=5, progress=None, require_learning=False, workers=1)
    small = run_audit(tiny_cnn, "0", [3, 5], data=synthfaces(300, 0, "planted"),
                      test_data=synthfaces(200, 0, "planted", split="test"), perturbation=LowPass(0.4), seeds=2,
                      train_config=train, heat_map=dict(eps=4.0, step=8, images=16), progress=None,
                      require_learning=False, workers=1)
    # The same audit judged leniently (a passing card) and strictly (an expected failure under a long id).
    lenient, strict = small.judge(threshold=1.0), small.judge(threshold=0.0)
    return [{**wide.to_dict(), "test": "tests/test_audits.py::test_mobilenetv3_intersectional",
             "test_outcome": "failed" if wide.verdict == "fail" else "passed"},
            {**small.to_dict(lenient), "test": "tests/test_audits.py::test_mobilenetv3_stem", "test_outcome": "passed"},
            {**small.to_dict(strict), "test": LONG_ID, "test_outcome": "xfailed"}]


def _chromium(browser: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", *args], check=True, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_report_at_1280px_has_no_clipped_element_no_sideways_scroll_and_a_card_per_audit(browser, records, tmp_path):
    report = write_html(tmp_path / "report.html", records, environment(), {"seeds": 6, "threshold": 0.05})
    size_kb = report.stat().st_size / 1024
    assert size_kb < 500, f"the report of three small audits is {size_kb:.0f} KB"

    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(browser, tmp_path, f"--window-size={WIDTH},900", "--virtual-time-budget=10000", "--dump-dom",
                    probed.as_uri()).stdout
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.S)
    assert found, "the layout probe did not run"
    layout = json.loads(html.unescape(found.group(1)))

    assert layout["bad"] == []  # no element clipped, scrolling sideways or wider than its container
    assert layout["page"] <= layout["window"] == WIDTH
    assert layout["cards"] == [r["test"] for r in records]

    # For a person to look at: the first screen and the whole page.
    shot = tmp_path / "report-1280.png"
    _chromium(browser, tmp_path, f"--window-size={WIDTH},900", "--hide-scrollbars", f"--screenshot={shot}",
              report.as_uri())
    image = Image.open(shot)
    assert image.size == (WIDTH, 900)
    assert len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 50  # text and colour, not a blank page
