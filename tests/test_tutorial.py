"""docs/tutorial.ipynb runs, at a small size, in a fresh kernel of this interpreter, and what it shows
holds together (the table's rows are the verdicts it prints, the figures are images, the comparison
covers both models). The saved copy's outputs come from one run of its cells, in order.

Re-execute the saved copy at the notebook's own sizes (after a change to what it shows) with:
``python tests/test_tutorial.py``.
"""

import base64
import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
# What the test runs the notebook at (its first cell reads these variables).
SMALL = {"GRADVIZ_TUTORIAL_SIZE": "64", "GRADVIZ_TUTORIAL_IMAGES": "2"}
CELL_TIMEOUT = 300


def kernel_here(folder: Path) -> str:
    """A kernel spec in ``folder`` that runs this interpreter (not whichever "python3" Jupyter finds)."""
    spec = folder / "kernels" / "gradviz-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gradviz test", "language": "python"}))
    return "gradviz-test"


def execute(nb, workdir: Path, kernel: str = "python3"):
    import nbclient

    nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=kernel, record_timing=False,
                            resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def tagged(nb, tag: str):
    [cell] = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


def text(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def result(cell, mime: str):
    [data] = [o.data[mime] for o in cell.outputs if o.output_type in ("execute_result", "display_data") and mime in o.data]
    return data


def test_the_tutorial_runs_and_what_it_shows_holds_together(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("pandas")
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    kernel = kernel_here(tmp_path / "jupyter")
    nb = execute(nbformat.read(NOTEBOOK, as_version=4), tmp_path, kernel)
    size = int(SMALL["GRADVIZ_TUTORIAL_SIZE"])

    # the report's table (its _repr_html_) has one row per layer, and its verdicts are the printed ones
    page = result(tagged(nb, "report"), "text/html")
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1])]
    printed = [line.split(None, 2) for line in text(tagged(nb, "verdicts")).splitlines() if not line.startswith("note:")]
    assert len(rows) == len(printed) >= 4
    assert [row[:3] for row in rows] == [[name, stride.removeprefix("S="), verdict] for name, stride, verdict in printed]
    assert f"a tensor ({SMALL['GRADVIZ_TUTORIAL_IMAGES']} images at {size} px)" in page
    assert "note: the model was in train mode" in text(tagged(nb, "verdicts"))  # torchvision builds it in train mode

    # the pandas table has the same layers
    table = result(tagged(nb, "table"), "text/html")
    assert all(f"<td>{row[0]}</td>" in table for row in rows)

    # the figures are images: the spectra with two panels per layer and a colourbar, the headline with two panels
    for tag, axes in (("spectra", 2 * len(rows) + 1), ("headline", 2)):
        png = base64.b64decode(result(tagged(nb, tag), "image/png"))
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and min(width, height) > 100
        assert re.fullmatch(rf"<Figure size \d+x\d+ with {axes} Axes>", result(tagged(nb, tag), "text/plain"))

    # the comparison covers both models, and the summary counts the compared rows
    compare = result(tagged(nb, "compare"), "text/html")
    summary = text(tagged(nb, "summary")).splitlines()
    assert [line.split(":")[0] for line in summary] == ["resnet18", "resnet18 blurpool3-stem"]
    for line in summary:
        found, total = map(int, re.search(r"grid detected in (\d+) of (\d+) layers", line).groups())
        assert 0 <= found <= total == compare.split("<tbody>")[1].count("<tr>")
    assert re.fullmatch(rf"\(2, 3, {size}, {size}\) S = 8 -> (grid: period .*|no detectable grid.*)\n",
                        text(tagged(nb, "objective")))


def test_the_saved_outputs_come_from_one_run_in_order():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error" or o.get("name") == "stderr"]
    shown = [c for c in code if c["metadata"].get("tags", ["parameters"]) != ["parameters"]]
    assert all(c["outputs"] for c in shown)  # every tagged cell but the parameters shows something


if __name__ == "__main__":  # re-execute the saved copy at the notebook's own sizes
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    execute(notebook, NOTEBOOK.parent)
    for cell in notebook.cells:  # no timestamps: a re-run that shows the same changes nothing
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
