"""report.html and a `gradviz html` page rendered by a real browser (headless Chromium): the verdict cards,
the table (with its sorting script run) and the figures are in the rendered DOM, and a screenshot is made.

Skipped, with the reason, only when no Chromium can be found; `.ci/run` installs Debian's `chromium`.
"""

import os
import re
import shutil
import subprocess

import pytest
import torch
from PIL import Image

from gradviz.cli import main
from gradviz.core.models import load_model
from gradviz.io.images import ImageSet
from gradviz.report import build_report
from gradviz.report.render import write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Chromium starts in a few seconds; a page this size renders in well under a minute even on 2 busy cores.
TIMEOUT_S = 120


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium found (looked for: " + ", ".join(BROWSERS) + "); install Debian's "
                "`chromium` package (`apt-get install chromium`), as .ci/run does")


def headless(page, *flags) -> subprocess.CompletedProcess:
    """Run Chromium headless on a local page (sandbox off: tests may run as root)."""
    args = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--allow-file-access-from-files", "--virtual-time-budget=5000", *flags, page.as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, env={**os.environ, "HOME": str(page.parent)})


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    images = ImageSet(torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(0)), ["a", "b", "c"], "noise")
    model = load_model("resnet18", "random", seed=0, device="cpu")
    report = build_report(model, images, layers=["relu", "layer1", "layer2"], progress=False)
    return write_report(report, tmp_path_factory.mktemp("browser") / "r18"), report


def test_report_page_renders_its_verdicts_table_and_figures(report_dir):
    out, report = report_dir
    dom = headless(out / "report.html", "--dump-dom").stdout
    assert dom.count('class="card grid"') + dom.count('class="card clear"') == len(report.layers)
    table = re.search(r'<table class="sortable verdicts"[^>]*data-sortable="ready"[^>]*>(.*?)</table>', dom, re.S)
    assert table, "the table's sorting script did not run"
    assert table.group(1).count("<tr>") == 1 + len(report.layers)
    for layer in report.layers:
        assert f'data-layer="{layer.name}"' in dom and layer.metrics.verdict in dom
    images = re.findall(r'<img src="([^"]+)"', dom)
    assert images and all((out / src).is_file() for src in images)


def test_screenshots_of_a_report_and_of_reports_side_by_side(report_dir, tmp_path):
    out, _ = report_dir
    side = tmp_path / "side.html"
    assert main(["html", str(out), str(out), "--out", str(side), "--quiet"]) == 0
    for page in (out / "report.html", side):
        shot = tmp_path / f"{page.stem}.png"
        done = headless(page, f"--screenshot={shot}", "--window-size=1280,2000")
        assert shot.is_file(), done.stderr[-2000:]
        with Image.open(shot) as im:
            assert im.size == (1280, 2000)
            colours = im.convert("RGB").resize((64, 100)).getcolors(64 * 100)
            assert colours is None or len(colours) > 20  # a rendered page, not a blank one
