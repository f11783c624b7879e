"""One command-line vocabulary: the same flag means the same thing, with the same default, in every
sub-command; the top-level help and version come without importing torch."""

import argparse
import subprocess
import sys

import pytest

from gradviz import __version__
from gradviz.cli.app import COMMANDS, build_parser, main
from gradviz.cli.common import weights_of

MODEL_COMMANDS = ["report", "layers", "dream", "compare"]
TINY_GENERATORS = ["generators", "--upsample", "nearest", "--samples", "2", "--blocks", "1", "--width", "4"]


def actions(command: str) -> dict:
    """``{flag: argparse action}`` of one sub-command's parser."""
    parser = build_parser([command])
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {flag: action for action in sub._actions for flag in action.option_strings}


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_top_level_help_and_version_do_not_import_torch(argv):
    code = (f"import sys\nfrom gradviz.cli.app import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_version_and_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "gradviz", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"gradviz {__version__}"


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name, summary in COMMANDS.items():
        assert name in text and summary.split()[0] in text


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_model_flags_mean_the_same_everywhere(command):
    flags = actions(command)
    assert flags["--model"].required
    assert flags["--weights"].default is None  # imagenet, or a file model's own (below)
    assert flags["--normalize"].default is None and flags["--num-classes"].default is None
    assert flags["--size"].default == 224
    assert flags["--device"].default == "auto"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_shared_flags_keep_one_meaning(command):
    flags = actions(command)
    if "--seed" in flags:
        assert flags["--seed"].default == 0
    if "--images" in flags:  # a folder or a file, never a count
        assert flags["--images"].type("photos") == "photos" and flags["--images"].default is None
    if "--layers" in flags:  # layer names, never a count
        assert flags["--layers"].type("features.4,features.9") == ["features.4", "features.9"]
    assert flags["--quiet"].default is False


def test_default_weights_are_imagenet_except_for_file_models():
    args = argparse.Namespace(weights=None, model="torchvision:mobilenet_v3_small")
    assert weights_of(args) == "imagenet"
    assert weights_of(argparse.Namespace(weights=None, model="nets/mine.py:build")) == "random"
    assert weights_of(argparse.Namespace(weights="w.pth", model="nets/mine.py:build")) == "w.pth"


def test_quiet_prints_nothing(tmp_path, capsys):
    assert main([*TINY_GENERATORS, "--quiet", "--out", str(tmp_path / "g")]) == 0
    assert capsys.readouterr().out == ""
    assert main(["overlap", "--quiet"]) == 0 and capsys.readouterr().out == ""
    assert main(["layers", "--model", "vgg11", "--size", "32", "--quiet"]) == 0 and capsys.readouterr().out == ""
    assert main([*TINY_GENERATORS, "--out", str(tmp_path / "g")]) == 0
    assert "wrote" in capsys.readouterr().out


def test_a_model_that_refuses_the_size_gets_one_line(tmp_path, capsys):
    (tmp_path / "fixed.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Fixed(nn.Module):  # takes 48 px images only, as a ViT takes its training size only\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(3, 4, 3, stride=2)\n\n"
        "    def forward(self, x):\n        assert x.shape[-1] == 48, f'Expected 48 but got {x.shape[-1]}'\n"
        "        return self.conv(x).mean((2, 3))\n\n"
        "def build():\n    return Fixed()\n")
    assert main(["layers", "--model", f"{tmp_path / 'fixed.py'}:build", "--size", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not run on 32 px images (AssertionError: Expected 48 but got 32)" in err
    assert main(["layers", "--model", f"{tmp_path / 'fixed.py'}:build", "--size", "48", "--quiet"]) == 0
