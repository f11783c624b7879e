"""report.html and `gradviz html`: verdict cards that match the numbers, a sortable table, figures that exist,
provenance, no network resources, escaping, and the never-lose-data rules for --out."""

import json
import os
import re
import shutil

import pytest
import torch

from gradviz.cli import main
from gradviz.core.models import load_model
from gradviz.io.images import ImageSet
from gradviz.io.outputs import is_gradviz_file
from gradviz.io.pages import View, comparison_rows
from gradviz.report import build_report
from gradviz.report.page import reports_page_html
from gradviz.report.render import write_report
from gradviz.spectrum.readings import layer_card


def noise_images(n=3, size=48, seed=0):
    return ImageSet(torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)),
                    [f"n{i}" for i in range(n)], "seeded noise")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model = load_model("vgg11", "random", seed=0, device="cpu")
    report = build_report(model, noise_images(), layers=["features.2", "features.5", "features.10"], progress=False)
    return write_report(report, tmp_path_factory.mktemp("pages") / "vgg11"), report


def cards_of(page: str) -> list[tuple[str, str]]:
    """(status, layer name) of every verdict card on a page."""
    return re.findall(r'<div class="card (\w+)" data-layer="([^"]+)">', page)


def test_report_html_has_a_card_per_layer_that_matches_the_verdict(folder):
    out, report = folder
    page = (out / "report.html").read_text()
    expected = [("grid" if layer.metrics.grid_detected else "clear", layer.name) for layer in report.layers]
    assert cards_of(page) == expected
    for layer in report.layers:
        m = layer.metrics
        card = layer_card(layer.to_dict())
        for j, octave in enumerate(card.octaves):  # the card's numbers are the meter's
            assert octave.period == 2 ** (j + 1)
            assert octave.excess == pytest.approx(m.octave_excess[j], rel=1e-9)
            assert octave.band == pytest.approx(m.octave_null_band[j], rel=1e-9)
            assert octave.detected == (m.octave_p_adjusted[j] < m.alpha)
            assert octave.text in page


def test_report_html_table_figures_provenance_and_definitions(folder):
    out, report = folder
    page = (out / "report.html").read_text()
    body = page.split('<table class="sortable verdicts">')[1].split("</table>")[0]
    assert body.count("<tr>") == 1 + len(report.layers)  # header and one row per layer
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all((out / src).is_file() for src in sources)  # figures beside the page, all present
    assert set(sources) == {p.name for p in out.glob("*.png")}
    assert "<summary>How to read this</summary>" in page and "<dt>excess</dt>" in page
    for value in ("vgg11", "seeded noise", str(report.seed), "torch"):
        assert f"<td>{value}" in page or value in page.split("Provenance")[1]
    assert is_gradviz_file(out / "report.html")


def test_pages_load_nothing_from_the_network(folder):
    out, _ = folder
    page = (out / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "<script src" not in page and "@import" not in page


def test_text_from_the_report_is_escaped():
    data = {"model": "<script>alert(1)</script>", "alpha": 0.05, "layers": []}
    page = reports_page_html([View(data["model"], data)])
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_rows_line_up_by_name_for_one_architecture_and_by_stride_otherwise():
    a = View("a", {"layers": [{"name": "x", "stride": 2}, {"name": "y", "stride": 4}]})
    header, same = comparison_rows([a, a])
    assert header == "layer" and [key for key, _ in same] == ["x", "y"] and all(len(cells) == 2 for _, cells in same)
    b = View("b", {"layers": [{"name": "u", "stride": 4}, {"name": "logits", "stride": 4}]})
    header, rows = comparison_rows([a, b])
    rows = dict(rows)
    assert header == "cumulative stride"
    assert [c.name for c in rows["S = 4"][1]] == ["u", "logits"] and rows["S = 2"][1] == []


def test_html_command_puts_reports_side_by_side_with_embedded_figures(folder, tmp_path, capsys):
    out, report = folder
    page_path = tmp_path / "side.html"
    assert main(["html", str(out), str(out), "--out", str(page_path)]) == 0
    page = page_path.read_text()
    assert len(cards_of(page)) == 2 * len(report.layers)
    assert page.count('<img src="data:image/png;base64,') == 2 * len(list(out.glob("*.png")))
    assert f"vgg11, random init (seed 0) ({out})" in page  # two reports of one model are told apart by their folders
    assert main(["html", str(out), "--out", str(page_path), "--quiet"]) == 0  # its own page is replaced
    assert len(cards_of(page_path.read_text())) == len(report.layers)


@pytest.mark.parametrize("case", ["not_a_folder", "no_json", "bad_json", "not_a_report", "foreign_out", "inside",
                                  "suffix", "fifo_json", "deep_json", "stride_text", "excess_text", "huge_number",
                                  "notes_number", "link_figure", "text_figure", "tag_in_comment", "lookalike_tag",
                                  "fifo_out", "other_report"])
def test_html_command_refuses_bad_input_in_one_line_and_leaves_nothing(folder, tmp_path, capsys, case):
    out, _ = folder
    reports, target = [str(out)], tmp_path / "page.html"
    if case == "not_a_folder":
        reports = [str(tmp_path / "missing")]
    elif case == "no_json":
        (tmp_path / "empty").mkdir()
        reports = [str(tmp_path / "empty")]
    elif case in ("bad_json", "not_a_report"):
        (tmp_path / "r").mkdir()
        (tmp_path / "r" / "report.json").write_text("{" if case == "bad_json" else json.dumps({"layers": 3}))
        reports = [str(tmp_path / "r")]
    elif case == "foreign_out":
        target.write_text("<html>mine</html>")
    elif case == "inside":
        target = out / "page.html"
    elif case == "suffix":
        target = tmp_path / "page.txt"
    elif case in ("fifo_json", "deep_json", "stride_text", "excess_text", "huge_number", "notes_number",
                  "link_figure", "text_figure"):
        copy = tmp_path / "r"
        shutil.copytree(out, copy)
        reports = [str(copy)]
        data = json.loads((copy / "report.json").read_text())
        if case == "fifo_json":
            (copy / "report.json").unlink()
            os.mkfifo(copy / "report.json")
        elif case == "deep_json":
            (copy / "report.json").write_text("[" * 100_000 + "]" * 100_000)
        elif case == "link_figure":
            (copy / "headline.png").unlink()
            (copy / "headline.png").symlink_to("/etc/passwd")
        elif case == "text_figure":
            (copy / "headline.png").write_text("not a picture")
        else:
            layer = data["layers"][0]
            if case == "stride_text":
                layer["stride"] = "two"
            elif case == "excess_text":
                layer["octave_excess"] = ["big"]
            elif case == "huge_number":
                layer["lattice_excess"] = 10**400
            else:
                data["notes"] = 5
            (copy / "report.json").write_text(json.dumps(data))
    elif case == "tag_in_comment":
        target.write_text('<html><!-- <meta name="generator" content="gradviz 0.1.0"> -->my notes</html>')
    elif case == "lookalike_tag":
        target.write_text('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                          '<meta name="generator" content="gradvizard 1.0">')
    elif case == "fifo_out":
        os.mkfifo(target)
    elif case == "other_report":
        other = tmp_path / "other"
        shutil.copytree(out, other)
        target = other / "report.html"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    assert main(["html", *reports, "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gradviz html: error: ")
    assert any(word in err for word in ("valid", "gradviz never replaces", "must end in"))
    assert "passwd" not in err and "root:" not in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()} == before
    assert not (out / "page.html").exists()


def test_a_report_from_an_earlier_version_still_makes_a_page(folder, tmp_path):
    out, report = folder
    old = tmp_path / "old"
    shutil.copytree(out, old)
    data = json.loads((old / "report.json").read_text())
    for layer in data["layers"]:  # fields added since: absent in an older report.json
        for key in ("octave_null_band", "octave_threshold", "tile_p_value", "coherent_lattice_fraction"):
            layer.pop(key)
    (old / "report.json").write_text(json.dumps(data))
    assert main(["html", str(old), "--out", str(tmp_path / "p.html"), "--quiet"]) == 0
    page = (tmp_path / "p.html").read_text()
    assert len(cards_of(page)) == len(report.layers) and "chance" not in page.split("<h2>")[2]


def test_a_page_gradviz_wrote_is_recognised_only_by_its_exact_head(tmp_path):
    page = tmp_path / "p.html"
    page.write_text(reports_page_html([]))
    assert is_gradviz_file(page)
    page.write_text("<!-- -->" + reports_page_html([]))
    assert not is_gradviz_file(page)
