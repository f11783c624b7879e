"""What the package ships: one version number, the page templates, py.typed, a LICENSE matching the metadata,
and no dependency that nothing imports."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import gradviz

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Distribution name -> the module it is imported as, where the two differ.
IMPORT_NAMES = {"pillow": "PIL", "pypng": "png", "scikit-image": "skimage"}


def test_the_version_is_written_once():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gradviz.__version__"}
    assert importlib.metadata.version("gradviz") == gradviz.__version__


def test_templates_and_py_typed_are_package_data():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["gradviz"]
    package = ROOT / "gradviz"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    assert (package / "py.typed") in shipped
    assert set((package / "templates").iterdir()) <= shipped


def test_license_matches_the_metadata():
    assert PYPROJECT["project"]["license"] == "MIT" and PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_every_dependency_is_imported():
    sources = "\n".join(p.read_text() for folder in ("gradviz", "tests", "scripts", "benchmarks")
                        for p in (ROOT / folder).rglob("*.py"))
    declared = PYPROJECT["project"]["dependencies"] + [d for ds in PYPROJECT["project"]["optional-dependencies"].values()
                                                        for d in ds]
    for requirement in declared:
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower()
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        if name == "ipykernel":  # the tutorial notebook's kernel: started by nbclient, never imported
            assert "nbclient" in sources
            continue
        assert re.search(rf"^\s*(import|from) {module}\b", sources, re.M), f"{requirement} is declared but never imported"
