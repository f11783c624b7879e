"""Hostile and odd inputs, as a new user would try them: every case ends with the right exit code,
one line on stderr, nothing of the user's deleted or changed, nothing left behind, and, for
readable images, the right pixel values. Fixtures are built on the fly."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image

from conftest import default_signals, write_noise_photos
from gradviz.cli.app import join_negative_values, main
from gradviz.errors import GradvizError
from gradviz.io.images import load_images, read_image
from gradviz.io.outputs import MANIFEST, atomic_dir

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
TINY_GENERATORS = ["generators", "--upsample", "deconv3", "--samples", "4", "--blocks", "1", "--width", "8"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(capsys, argv: list[str]) -> tuple[int, list[str]]:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def assert_refused(capsys, argv: list[str], folder: Path, message: str, rc_expected: int = 2) -> None:
    """Exit code 2, one stderr line holding ``message``, and ``folder`` exactly as before."""
    before = snapshot(folder)
    names = sorted(p.name for p in folder.iterdir())
    rc, err = run_cli(capsys, argv)
    assert rc == rc_expected, (argv, err)
    assert len(err) == 1 and message in err[0], (argv, err)
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == names  # no new folder, hidden or not


# ------------------------------------------------------------------ images read faithfully

RAMP16 = (np.arange(64 * 48, dtype=np.uint32) * 21 % 65536).astype(np.uint16).reshape(48, 64)


def write_png16(path: Path, array: np.ndarray) -> None:
    h, w = array.shape[:2]
    planes = 1 if array.ndim == 2 else array.shape[2]
    writer = png.Writer(w, h, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16)
    with open(path, "wb") as f:
        writer.write(f, array.reshape(h, -1))


def test_16bit_grey_png_keeps_16_bits(tmp_path):
    write_png16(tmp_path / "g.png", RAMP16)
    img = read_image(tmp_path / "g.png")
    expected = torch.from_numpy(RAMP16.astype(np.float32) / 65535)
    torch.testing.assert_close(img, expected.expand(3, -1, -1), rtol=0, atol=0)


def test_16bit_rgb_png_keeps_16_bits(tmp_path):
    rgb = np.stack([RAMP16, RAMP16[::-1], 65535 - RAMP16], -1)
    write_png16(tmp_path / "c.png", rgb)
    img = read_image(tmp_path / "c.png")
    torch.testing.assert_close(img, torch.from_numpy(rgb.astype(np.float32) / 65535).permute(2, 0, 1), rtol=0, atol=0)


def test_full_ramp_loads_with_mean_one_half(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (16, 1))
    write_png16(tmp_path / "ramp.png", np.stack([ramp] * 3, -1))
    assert float(read_image(tmp_path / "ramp.png").mean()) == pytest.approx(0.5, abs=1e-6)


def test_16bit_and_float_tiff(tmp_path):
    rgb = np.stack([RAMP16] * 3, -1)
    tifffile.imwrite(tmp_path / "c16.tif", rgb, photometric="rgb")
    torch.testing.assert_close(read_image(tmp_path / "c16.tif"),
                               torch.from_numpy(rgb.astype(np.float32) / 65535).permute(2, 0, 1), rtol=0, atol=0)
    grey = (RAMP16 / 65535).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", grey)
    torch.testing.assert_close(read_image(tmp_path / "f.tif")[0], torch.from_numpy(grey), rtol=0, atol=0)


@pytest.mark.parametrize("values,message", [(np.array([[0.0, 2.5]]), "span [0, 2.5]"),
                                            (np.array([[0.0, np.nan]]), "NaN")])
def test_float_tiff_outside_unit_range_is_refused(tmp_path, values, message):
    tifffile.imwrite(tmp_path / "bad.tif", np.repeat(values.astype(np.float32), 8, axis=0))
    with pytest.raises(GradvizError, match=message.replace("[", r"\[")) as info:
        read_image(tmp_path / "bad.tif")
    assert "bad.tif" in str(info.value)


def test_palette_la_cmyk_and_bilevel_become_rgb(tmp_path):
    pal = Image.new("P", (8, 8))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putpixel((3, 3), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img[:, 0, 0].mul(255).round().tolist() == [10, 20, 30]
    assert img[:, 3, 3].mul(255).round().tolist() == [200, 100, 50]
    Image.new("LA", (8, 8), (77, 10)).save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png").mul(255).round().unique().tolist() == [77]
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    red = read_image(tmp_path / "cmyk.jpg")[:, 4, 4]
    assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1
    Image.new("1", (8, 8), 1).save(tmp_path / "b.png")
    assert read_image(tmp_path / "b.png").min() == 1.0


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))  # white left quarter
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    img = read_image(tmp_path / "o.jpg")
    assert img.shape == (3, 40, 20)
    assert img[:, :8].mean() > 0.9 and img[:, 12:].mean() < 0.1  # white at the top after the rotation


def _bomb_png(path: Path, side: int) -> None:
    """A tiny file whose header claims a ``side`` x ``side`` image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind,message", [("text", "not an image"), ("truncated", "cannot read image"),
                                          ("bomb", "Mpx gradviz reads"), ("bomb2", "Mpx gradviz reads")])
def test_unreadable_images_name_the_file(tmp_path, kind, message):
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path = tmp_path / "text.jpg"
        path.write_text("hello, not a JPEG")
    elif kind == "truncated":
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
        path.write_bytes(buf.getvalue()[:300])
    else:
        _bomb_png(path, 12_000 if kind == "bomb" else 40_000)  # above the limit, and above Pillow's 2x error
    with pytest.raises(GradvizError, match=message) as info:
        load_images(path, size=32).images
    assert path.name in str(info.value) and len(str(info.value).splitlines()) == 1


def test_folder_walk_skips_hidden_and_metadata_files(tmp_path):
    Image.new("RGB", (40, 40), (255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(tmp_path, size=32)
    assert images.names == ["a.png"] and len(images) == 1
    assert float(images.images[0, 0].min()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.skipif(IS_ROOT, reason="root reads any folder")
def test_unreadable_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        with pytest.raises(GradvizError, match="cannot read image folder"):
            load_images(folder, size=32)
    finally:
        folder.chmod(0o755)


# ------------------------------------------------------------------ arguments refused where they are parsed

REPORT = ["report", "--model", "resnet18", "--weights", "random", "--size", "64"]
DREAM = ["dream", "--model", "vgg11", "--weights", "random", "--size", "64", "--steps", "1", "--quiet",
         "--layer", "features.10", "--channel", "0"]

BAD_ARGUMENTS = [
    (REPORT + ["--batch-size", "0"], "--batch-size: must be an integer >= 1"),
    (REPORT + ["--batch-size", "-1"], "--batch-size"),
    (REPORT + ["--layers", ","], "--layers: expected one or more"),
    (REPORT + ["--device", "tpu"], "unknown device 'tpu'"),
    (REPORT + ["--seed", "-1"], "--seed: must be an integer between 0"),
    (REPORT + ["--seed", str(2**64)], "--seed"),
    (REPORT + ["--size", "0"], "--size"),
    (REPORT + ["--alpha", "nan"], "finite"),
    (REPORT + ["--size", "100000"], "of memory, more than"),
    (DREAM + ["--octaves", "2", "--octave-scale", "nan"], "--octave-scale: expected a finite number"),
    (DREAM + ["--scales", "nan"], "--scales"),
    (DREAM + ["--scales", "0"], "every value must be > 0"),
    (DREAM + ["--scales", "-1"], "every value must be > 0"),
    (DREAM + ["--scales", "inf"], "finite"),
    (DREAM + ["--angles", "inf"], "finite"),
    (DREAM + ["--lr", "nan"], "--lr"),
    (DREAM + ["--lr", "0"], "--lr"),
    (DREAM[:-2] + ["--channel", ""], "--channel"),
    (DREAM + ["--layer", ""], "--layer"),
    (DREAM + ["--size", "100000"], "of memory, more than"),
    (["layers", "--model", "resnet18", "--size", "0"], "--size"),
    (["layers", "--model", "resnet18", "--size", "8"], "total stride 32"),
    (["overlap", "--depth", "40"], "of memory, more than"),
    (["overlap", "--depth", "64"], "period of more than 2**62"),
    (["overlap", "--depth", "600"], "--depth: must be an integer between 1 and 64"),
    (["overlap", "--stride", "3", "--depth", "50"], "period of more than 2**62"),
    (["overlap", "--final", str(2**62)], "--final"),
    (DREAM + ["--image", ""], "--image: must not be empty"),
    (["overlap", "--kernel", "10000000000"], "kernel must be a size from 1 to 1024"),
    (REPORT + ["--size", "1" + "0" * 40], "is too large"),
    (["layers", "--model", "resnet18", "--size", str(2**62)], "of memory, more than"),
    (TINY_GENERATORS[:-1] + ["100000000"], "of memory, more than"),
    (TINY_GENERATORS + ["--upsample", ","], "--upsample"),
]


@pytest.mark.parametrize("argv,message", BAD_ARGUMENTS, ids=[" ".join(a[-2:]) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    out = ["--out", "out.png"] if argv[0] in ("dream", "overlap") else ([] if argv[0] == "layers" else ["--out", "out"])
    assert_refused(capsys, argv + out, tmp_path, message)


def test_cuda_asked_for_without_cuda(tmp_path, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.chdir(tmp_path)
    assert_refused(capsys, REPORT + ["--device", "cuda", "--out", "out"], tmp_path, "CUDA is not available")


def test_negative_number_lists_parse():
    assert join_negative_values(["dream", "--angles", "-5,0,5", "--out", "x.png"]) == ["dream", "--angles=-5,0,5", "--out", "x.png"]
    assert join_negative_values(["--scales", "-1"]) == ["--scales", "-1"]  # a single number argparse handles itself


def test_dream_with_negative_angles_runs(tmp_path, capsys):
    out = tmp_path / "d.png"
    rc, err = run_cli(capsys, DREAM + ["--angles", "-5,0,5", "--out", str(out)])
    assert rc == 0, err
    history = json.loads(out.with_suffix(".json").read_text())
    assert history["settings"]["angles"] == [-5.0, 0.0, 5.0]


# ------------------------------------------------------------------ never lose a user's data

@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's working folder: a thesis, a folder of photos, a notes file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "thesis.tex").write_text("work of months\n")
    (tmp_path / "photos").mkdir()
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30)]):
        Image.new("RGB", (64, 64), colour).save(tmp_path / "photos" / f"p{i}.png")
    (tmp_path / "notes.txt").write_text("x\n")
    return tmp_path


@pytest.mark.parametrize("command", [
    REPORT,
    ["compare", "--model", "resnet18", "--weights", "random", "--size", "64"],
    TINY_GENERATORS,
    ["discriminator", "--patches", "2"],
])
@pytest.mark.parametrize("out,message", [
    ("proj", "already holds files gradviz did not write (thesis.tex)"),
    ("notes.txt", "is an existing file"),
    ("notes.txt/sub", "is a file, not a folder"),
    ("", "--out is empty"),
    (".", "is the current folder"),
    ("..", "is the current folder or one above it"),
])
def test_out_never_replaces_what_gradviz_did_not_write(project, capsys, command, out, message):
    assert_refused(capsys, command + ["--out", out], project, message)


@pytest.mark.parametrize("out", ["photos", "."])
def test_out_may_not_be_or_contain_the_images(project, capsys, out):
    if out == ".":
        out = str(project)  # the absolute path of the folder holding photos/
        message = "current folder"
    else:
        message = "is the input"
    assert_refused(capsys, REPORT + ["--images", "photos", "--out", out], project, message)


def test_out_containing_the_images_is_refused(project, capsys):
    (project / "runs").mkdir()
    os.replace(project / "photos", project / "runs" / "photos")
    # a gradviz folder that holds the images: replacing it would delete them
    (project / "runs" / MANIFEST).write_text(json.dumps({"software": "gradviz", "files": ["photos/p0.png", "photos/p1.png"]}))
    assert_refused(capsys, REPORT + ["--images", "runs/photos", "--out", "runs"], project, "contains the input")


def test_a_gradviz_folder_is_replaced_but_not_once_the_user_adds_to_it(project, capsys):
    out = project / "g"
    assert run_cli(capsys, TINY_GENERATORS + ["--out", "g"])[0] == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["software"] == "gradviz" and manifest["files"] == ["metrics.json", "report.html", "samples.png"]
    assert manifest["sha256"]["metrics.json"] == hashlib.sha256((out / "metrics.json").read_bytes()).hexdigest()
    assert run_cli(capsys, TINY_GENERATORS + ["--seed", "1", "--out", "g"])[0] == 0  # replaced
    with open(out / "metrics.json", "a") as f:  # an edit of the user's to a file gradviz wrote
        f.write(" ")
    assert_refused(capsys, TINY_GENERATORS + ["--out", "g"], project, "edited since gradviz wrote them (metrics.json)")
    assert run_cli(capsys, TINY_GENERATORS + ["--out", "g2"])[0] == 0
    (project / "g2" / "my-notes.md").write_text("mine\n")
    assert_refused(capsys, TINY_GENERATORS + ["--out", "g2"], project, "(my-notes.md)")


def test_an_empty_folder_is_written_into(project, capsys):
    (project / "empty").mkdir()
    assert run_cli(capsys, TINY_GENERATORS + ["--out", "empty"])[0] == 0
    assert (project / "empty" / "metrics.json").exists()
    assert not [p for p in project.iterdir() if p.name.startswith(".")]


def test_dream_never_replaces_a_users_image_or_its_own_input(project, capsys):
    Image.new("RGB", (64, 64), (9, 9, 9)).save(project / "mine.png")
    assert_refused(capsys, DREAM + ["--out", "mine.png"], project, "was not written by gradviz")
    (project / "d.json").write_text("{}")  # the history's name is the user's
    assert_refused(capsys, DREAM + ["--out", "d.png"], project, "was not written by gradviz")
    assert_refused(capsys, DREAM + ["--image", "photos/p0.png", "--out", "photos/p0.png"], project, "is the input")
    (project / "d.json").unlink()
    assert run_cli(capsys, DREAM + ["--out", "d.png"])[0] == 0
    assert run_cli(capsys, DREAM + ["--seed", "1", "--out", "d.png"])[0] == 0  # its own file: replaced
    assert not [p for p in project.iterdir() if p.name.startswith(".")]


def test_overlap_never_replaces_a_users_json(project, capsys):
    (project / "fig.json").write_text('{"mine": true}')
    assert_refused(capsys, ["overlap", "--out", "fig.png"], project, "was not written by gradviz")


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_read_only_parent(project, capsys):
    (project / "ro").mkdir()
    (project / "ro").chmod(0o555)
    try:
        assert_refused(capsys, TINY_GENERATORS + ["--out", "ro/x"], project, "is not writable")
    finally:
        (project / "ro").chmod(0o755)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_follow_the_umask(project, capsys, mask):
    old = os.umask(mask)
    try:
        assert run_cli(capsys, TINY_GENERATORS + ["--out", "g"])[0] == 0
        assert run_cli(capsys, ["overlap", "--out", "o.png"])[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((project / "g").stat().st_mode) == 0o777 & ~mask
    for f in [project / "g" / "metrics.json", project / "g" / MANIFEST, project / "o.png", project / "o.json"]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f


# ------------------------------------------------------------------ silent nonsense

def test_nan_weights_are_refused(tmp_path, capsys, monkeypatch):
    from gradviz.core.models import build_architecture

    state = build_architecture("resnet18").state_dict()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    monkeypatch.chdir(tmp_path)
    assert_refused(capsys, ["report", "--model", "resnet18", "--weights", "nan.pth", "--size", "64", "--out", "o"],
                   tmp_path, "layer2.0.conv1.weight holds NaN")


def _hooked_resnet(scale: float):
    from gradviz.core.models import load_model

    model = load_model("resnet18", "random")
    model.net.layer2.register_forward_hook(lambda m, i, o: o * scale)
    return model


def test_nan_output_is_refused():
    from gradviz.io.images import builtin_images
    from gradviz.report import build_report

    with pytest.raises(GradvizError, match="NaN or infinite for image skimage:astronaut"):
        build_report(_hooked_resnet(float("nan")), builtin_images(64), layers=["layer3"], progress=False)


def test_zero_gradient_gets_a_note_and_no_verdict():
    from gradviz.io.images import builtin_images
    from gradviz.report import build_report

    report = build_report(_hooked_resnet(0.0), builtin_images(64), layers=["layer1", "layer3"], progress=False)
    zero, live = report.layers[1].metrics, report.layers[0].metrics
    assert zero.zero_gradient and zero.verdict.startswith("no gradient") and not zero.grid_detected
    assert not live.zero_gradient and live.p_value == live.p_value
    assert any("layer3: the gradient is zero for every image" in n for n in report.notes)


def test_dream_records_real_per_step_metrics():
    from gradviz.core.models import load_model
    from gradviz.core.objectives import channel
    from gradviz.optvis.dream import DreamSettings, dream
    from gradviz.optvis.parameterization import start_images

    model = load_model("vgg11", "random")
    result = dream(model, channel("features.10", 3), start_images("noise", 64, seed=0),
                   DreamSettings(steps=3, progress=False))
    assert len(result.history) == 3
    for r in result.history:
        values = [r.objective, *r.values, r.lattice_fraction, r.tile_contrast, r.lattice_excess, *r.octave_fractions,
                  *r.octave_excess]
        assert None not in values and all(np.isfinite(values)), values
        assert 0 < r.lattice_fraction < 1 and r.tile_contrast >= 1 and r.lattice_excess > 0, values
        assert len(r.octave_fractions) == len(r.octave_excess) == 3  # periods 2, 4, 8 of features.10 (stride 8)
    assert float(result.update().abs().max()) > 0


def test_unsafe_pickle_is_refused_and_runs_nothing(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"conv.weight": Evil()}))
    monkeypatch.chdir(tmp_path)
    rc, err = run_cli(capsys, ["report", "--model", "resnet18", "--weights", "evil.pth", "--out", "o"])
    assert rc == 2 and len(err) == 1 and "evil.pth" in err[0]
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_unexpected_error_one_line_and_a_log(tmp_path, capsys, monkeypatch):
    import gradviz.cli.generators as command

    def boom(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(command, "measure_generators", boom)
    monkeypatch.chdir(tmp_path)
    rc, err = run_cli(capsys, TINY_GENERATORS + ["--out", "g"])
    assert rc == 1 and len(err) == 1 and "internal error (RuntimeError: something nobody expected)" in err[0]
    log = Path(err[0].rsplit("full traceback in ", 1)[1])
    try:
        assert "Traceback" in log.read_text() and "boom" in log.read_text()
    finally:
        log.unlink()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ interruptions and two writers

SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import gradviz.cli.generators as command
    from gradviz.cli import main

    def slow_plot(results, path):  # the figure is being written when the signal comes
        Path(path).write_bytes(b"partial")
        Path(sys.argv[1]).write_text("ready")
        time.sleep(60)

    command.plot_samples = slow_plot
    sys.exit(main(["generators", "--upsample", "deconv3", "--samples", "4", "--blocks", "1", "--width", "8",
                   "--out", sys.argv[2]]))
""")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_while_writing_cleans_up(tmp_path, sig, code):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(ready), str(tmp_path / "out" / "run")],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path, preexec_fn=default_signals)
    deadline = time.time() + 120
    while not ready.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), proc.stderr.read() if proc.poll() is not None else "never ready"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    lines = [l for l in err.strip().splitlines() if "%|" not in l]  # progress bars aside
    assert proc.returncode == code, err
    assert len(lines) == 1 and "partial outputs removed" in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ready"]  # not even the created parent folder


def test_two_writers_of_the_same_out(tmp_path):
    argv = [sys.executable, "-m", "gradviz.cli", *TINY_GENERATORS, "--out", "same"]
    procs = [subprocess.Popen(argv + ["--seed", str(i)], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for rc, err in results:
        # both finish (the last rename wins), or the loser says in one line why it stopped
        assert rc == 0 or (rc == 2 and len(err.strip().splitlines()) == 1), err
    assert any(rc == 0 for rc, _ in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same"]  # no temporary or swapped-out folder
    manifest = json.loads((tmp_path / "same" / MANIFEST).read_text())
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == sorted([MANIFEST, *manifest["files"]])


def test_atomic_dir_removes_its_work_on_error(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(tmp_path / "a" / "b") as tmp:
            (tmp / "x").write_text("partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_links_and_folders_the_user_put_in_a_gradviz_folder_are_kept(project, capsys):
    assert run_cli(capsys, TINY_GENERATORS + ["--out", "g"])[0] == 0
    (project / "g" / "mydir").mkdir()  # an empty folder of the user's
    assert_refused(capsys, TINY_GENERATORS + ["--out", "g"], project, "(mydir)")
    (project / "g" / "mydir").rmdir()
    (project / "g" / "link").symlink_to(project / "proj")
    assert_refused(capsys, TINY_GENERATORS + ["--out", "g"], project, "(link)")


def test_links_are_never_replaced_and_are_followed_to_inputs(project, capsys):
    (project / "plink").symlink_to(project / "proj")
    assert_refused(capsys, TINY_GENERATORS + ["--out", "plink"], project, "is a symbolic link")
    (project / "mine.png").write_bytes(b"user bytes")
    (project / "mlink.png").symlink_to(project / "mine.png")
    assert_refused(capsys, DREAM + ["--out", "mlink.png"], project, "is a symbolic link")
    assert run_cli(capsys, TINY_GENERATORS + ["--out", "g"])[0] == 0
    (project / "glink").symlink_to(project / "g")
    # the input lies inside --out through a link
    assert_refused(capsys, REPORT + ["--images", "glink/samples.png", "--out", "g"], project, "contains the input")


@pytest.mark.parametrize("extra,message", [(["--crop-jitter", "1000000000"], "at most the image size 64"),
                                           (["--scales", "1e300"], "must lie in [0.1, 10.0]")])
def test_dream_transform_ranges(project, capsys, extra, message):
    assert_refused(capsys, DREAM + extra + ["--out", "d.png"], project, message)


def test_16bit_grey_alpha_png_and_16bit_png_with_exif(tmp_path):
    la = np.stack([RAMP16, np.full_like(RAMP16, 65535)], -1)
    write_png16(tmp_path / "la.png", la)
    torch.testing.assert_close(read_image(tmp_path / "la.png")[0], torch.from_numpy(RAMP16.astype(np.float32) / 65535),
                               rtol=0, atol=0)
    rgb = np.stack([RAMP16] * 3, -1)
    write_png16(tmp_path / "plain.png", rgb)
    exif = Image.Exif()
    exif[0x0112] = 6
    raw = (tmp_path / "plain.png").read_bytes()
    body = exif.tobytes()
    body = body[6:] if body.startswith(b"Exif\x00\x00") else body  # a PNG eXIf chunk holds the TIFF data only
    chunk = len(body).to_bytes(4, "big") + b"eXIf" + body + zlib.crc32(b"eXIf" + body).to_bytes(4, "big")
    (tmp_path / "rot.png").write_bytes(raw[:33] + chunk + raw[33:])  # after the 8-byte signature and IHDR
    assert read_image(tmp_path / "rot.png").shape == (3, 64, 48)  # 48 x 64 turned a quarter


def test_user_input_mistakes_are_named(project, capsys):
    assert_refused(capsys, REPORT + ["--images", "", "--out", "o"], project, "--images: must not be empty")
    assert_refused(capsys, REPORT + ["--images", "photos", "--noise-images", "2", "--out", "o"], project,
                   "built-in set only")
    assert_refused(capsys, DREAM + ["--image", "grey", "--out", "d.png"], project, "image not found")


def test_an_empty_folder_keeps_its_permissions(project, capsys):
    (project / "mine").mkdir()
    (project / "mine").chmod(0o750)
    assert run_cli(capsys, TINY_GENERATORS + ["--out", "mine"])[0] == 0
    assert stat.S_IMODE((project / "mine").stat().st_mode) == 0o750


def test_sigterm_to_the_process_group_while_reading_images(tmp_path):
    write_noise_photos(tmp_path / "many", 48, (72, 72))
    proc = subprocess.Popen([sys.executable, "-m", "gradviz", *REPORT, "--images", "many", "--batch-size", "2",
                             "--out", "out"], cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_signals)
    time.sleep(4.0)  # imports done, images being read and measured (the run takes longer than this)
    if proc.poll() is not None:
        pytest.skip("the run ended before it could be signalled")
    os.killpg(proc.pid, signal.SIGTERM)  # as a terminal or a job scheduler does: the whole group
    _, err = proc.communicate(timeout=60)
    lines = [l for l in err.strip().splitlines() if "%|" not in l]
    assert proc.returncode == 143 and len(lines) == 1 and "SIGTERM" in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many"]


def test_odd_paths_are_named(project, capsys):
    (project / "dangling").symlink_to(project / "nowhere")
    assert_refused(capsys, TINY_GENERATORS + ["--out", "dangling/sub"], project, "is a broken symbolic link")
    os.mkfifo(project / "pipe.png")
    assert_refused(capsys, REPORT + ["--images", "pipe.png", "--out", "o"], project, "neither a folder nor a regular file")
    assert_refused(capsys, TINY_GENERATORS + ["--upsample", "deconv3+final999999", "--out", "g"], project,
                   "of memory, more than")


def test_a_full_disk_names_the_output(project, capsys, monkeypatch):
    import gradviz.cli.generators as command

    def full(results, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(command, "plot_samples", full)
    assert_refused(capsys, TINY_GENERATORS + ["--out", "g"], project, "cannot write --out")
