"""End to end in a real browser: headless Chromium renders report.html; every plot is decoded and visible."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from hgcnet_jax.report import FIGURES

pytestmark = pytest.mark.browser

# Runs after load: records, for every plot, whether the browser decoded it and lays it out visibly.
_PROBE = """
<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img.plot').forEach(function (img) {
    var r = img.getBoundingClientRect(), cs = getComputedStyle(img);
    out.push({name: img.dataset.name, complete: img.complete, nw: img.naturalWidth, nh: img.naturalHeight,
              w: r.width, h: r.height, visible: cs.display !== 'none' && cs.visibility !== 'hidden'
              && parseFloat(cs.opacity) > 0});
  });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium)")


def _run(args, tmp_path):
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120)


def probe_report(report, tmp_path) -> dict[str, dict]:
    """Render ``report`` in headless Chromium; per plot: decoded size, laid-out size, visibility."""
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", _PROBE + "</body>"))
    proc = _run(["--window-size=1280,2000", "--dump-dom", probed.as_uri()], tmp_path)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"chromium produced no probe output; stderr:\n{proc.stderr[-2000:]}"
    return {d["name"]: d for d in json.loads(m.group(1).replace("&quot;", '"'))}


def test_report_plots_are_decoded_and_visible_in_chromium(tmp_path, built_report):
    found = probe_report(built_report[0] / "report.html", tmp_path)
    assert set(found) == set(FIGURES)
    for name, d in found.items():
        assert d["complete"] and d["nw"] > 100 and d["nh"] > 100, (name, d)   # decoded
        assert d["visible"] and d["w"] > 100 and d["h"] > 50, (name, d)       # laid out and shown


def test_screenshot_of_the_report_is_not_blank(tmp_path, built_report):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    report = built_report[0] / "report.html"
    shot = tmp_path / "shot.png"
    proc = _run([f"--screenshot={shot}", "--window-size=1100,1600", report.as_uri()], tmp_path)
    assert shot.is_file(), f"no screenshot; stderr:\n{proc.stderr[-2000:]}"
    img = matplotlib_image.imread(shot)[..., :3]
    # The page's first screen holds the recommendation plot: many distinct colours, not a blank page.
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    non_white = np.mean(np.any(img < 0.9, axis=-1))
    colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert non_white > 0.03 and colours > 50, (non_white, colours)
