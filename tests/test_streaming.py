"""Image inputs streamed from files: folder trees in path order, list files, seeded samples, worker processes
that give the same report and never outlive an error or a signal, and file-backed sets split between ranks."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import default_signals, write_noise_photos
from gradviz.cli import main
from gradviz.errors import GradvizError
from gradviz.io.image_inputs import as_image_set
from gradviz.io.images import load_images, read_image, resize_square
from gradviz.report import build_report

HAS_PROC = Path("/proc/self/stat").exists()
# A report run in a subprocess: importing torch and gradviz takes a few seconds on a busy 2-core machine.
TIMEOUT_S = 120
REPORT = ["report", "--model", "vgg11", "--weights", "random", "--size", "32", "--layers", "features.2",
          "--device", "cpu", "--quiet"]


def save_noise(path: Path, side: int = 40, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def truncated_png(path: Path) -> Path:
    """A PNG whose header reads (so it passes the up-front check) but whose pixels cannot be decoded."""
    save_noise(path, 64)
    path.write_bytes(path.read_bytes()[:300])
    return path


def children(pid: int | None = None) -> set[int]:
    """Processes (zombies included) whose parent is ``pid`` (default: this process), from /proc."""
    pid = os.getpid() if pid is None else pid
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def in_group(pgid: int) -> set[int]:
    """Processes of process group ``pgid``, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
                found.add(int(entry.name))
    return found


@pytest.fixture()
def tree(tmp_path):
    """An ImageFolder-style tree: two class folders, an image at the top, a hidden folder, a report folder and a
    non-image file."""
    root = tmp_path / "data"
    for i, name in enumerate(["dog/b.png", "cat/2.jpg", "cat/10.png", "top.png", "dog/a/deep.png", ".cache/x.png"]):
        save_noise(root / name, seed=i)
    (root / "cat" / "labels.csv").write_text("not an image")
    (root / "dog" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    save_noise(root / "report" / "headline.png", seed=7)  # a folder gradviz wrote (its manifest): not images
    (root / "report" / ".gradviz.json").write_text("{}")
    return root


def test_a_tree_is_read_recursively_in_path_order_with_class_folders_in_the_names(tree):
    images = load_images(tree, size=32)
    assert images.names == ["cat/10.png", "cat/2.jpg", "dog/a/deep.png", "dog/b.png", "top.png"]
    assert images.source == f"{tree} (1 non-image file skipped)"
    # the pixels are those of the named files, in that order
    expected = torch.stack([resize_square(read_image(tree / name), 32) for name in images.names])
    assert torch.equal(images.images, expected)


def test_a_list_file_names_images_relative_to_itself_with_comments_and_blank_lines(tmp_path, tree):
    outside = save_noise(tmp_path / "elsewhere" / "o.png", seed=9)
    listing = tree / "lists" / "val.txt"
    listing.parent.mkdir()
    lines = ["# validation images", "", "../dog/b.png", "  ../top.png  ", str(outside), "# ../cat/2.jpg", "../top.png\r"]
    listing.write_text("\n".join(lines) + "\n")
    images = load_images(listing, size=32)
    assert images.names == ["../dog/b.png", "../top.png", str(outside), "../top.png"]
    assert images.files[0] == listing.parent / "../dog/b.png" and images.source == str(listing)
    assert torch.equal(images.images[1], images.images[3])


def test_a_list_naming_a_missing_file_is_refused_in_one_line(tmp_path, tree, capsys):
    listing = tmp_path / "val.txt"
    listing.write_text("data/top.png\n# fine so far\ndata/gone.png\n")
    out = tmp_path / "rep"
    assert main([*REPORT, "--images", str(listing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"image list {listing}, line 3: data/gone.png not found" in err and "valid:" in err
    assert not out.exists()
    listing.write_text("# nothing\n\n")
    with pytest.raises(GradvizError, match="names no image"):
        load_images(listing, size=32)


def test_max_images_is_a_seeded_sample_kept_in_path_order(tmp_path):
    folder = write_noise_photos(tmp_path / "many", 20, (34, 34))
    everything = load_images(folder, size=32).names
    a = load_images(folder, size=32, seed=3, max_images=6)
    again = load_images(folder, size=32, seed=3, max_images=6)
    other = load_images(folder, size=32, seed=4, max_images=6)
    assert a.names == again.names and a.files == again.files
    assert len(a) == 6 and len(set(a.names)) == 6 and set(a.names) <= set(everything)
    assert a.names == sorted(a.names, key=everything.index) and other.names != a.names
    assert a.source == f"{folder} (a sample of 6 of its 20 images, seed 3)"
    assert load_images(folder, size=32, seed=3, max_images=50).names == everything  # more than there are: all
    paths = [folder / name for name in everything]
    assert [f.name for f in as_image_set(paths, 32, max_images=6, seed=3).files] == a.names
    assert as_image_set(str(folder), 32, max_images=6, seed=3).names == a.names
    with pytest.raises(GradvizError, match="apply to image files"):
        as_image_set(torch.rand(2, 3, 8, 8), max_images=1)


def test_max_images_and_workers_on_the_command_line(tmp_path, capsys):
    folder = write_noise_photos(tmp_path / "photos", 5, (36, 36))
    assert main([*REPORT, "--images", str(folder), "--max-images", "3", "--workers", "2",
                 "--out", str(tmp_path / "rep")]) == 0
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["n_images"] == 3 and data["images"] == f"{folder} (a sample of 3 of its 5 images, seed 0)"
    for bad in (["--workers", "-1"], ["--max-images", "0"]):
        assert main([*REPORT, "--images", str(folder), *bad, "--out", str(tmp_path / "bad")]) == 2
        assert bad[0] in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_workers_give_the_same_batches_and_report_as_the_main_process(tree, vgg11):
    alone = load_images(tree, size=32)
    helped = load_images(tree, size=32, workers=2)
    assert [b.shape[0] for b in helped.batches(2)] == [2, 2, 1]
    assert torch.equal(torch.cat(list(helped.batches(2))), alone.images)
    a = build_report(vgg11, alone, layers=["features.2"], batch_size=2, progress=False).to_dict()
    b = build_report(vgg11, helped, layers=["features.2"], batch_size=2, progress=False).to_dict()
    assert a == b


@pytest.mark.skipif(not HAS_PROC, reason="reads /proc")
def test_no_worker_outlives_an_error(tmp_path, tree, vgg11, capsys):
    before = children()
    truncated_png(tree / "cat" / "3.png")  # the third image of six: the second batch of two
    images = load_images(tree, size=32, workers=2)  # the header reads
    with pytest.raises(GradvizError, match="cannot read image .*3.png") as info:
        images.images
    assert len(str(info.value).splitlines()) == 1 and children() == before
    # an error in the caller, after the first batch: the generator is closed, and the workers go
    with pytest.raises(RuntimeError, match="the caller fails"):
        with closing(images.batches(1)) as batches:
            for _ in batches:
                assert children() - before  # the workers are running
                raise RuntimeError("the caller fails")
    assert children() == before
    # and through the command line: one line, exit 2, no output, no worker
    out = tmp_path / "rep"
    assert main([*REPORT, "--images", str(tree), "--workers", "2", "--batch-size", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "3.png" in err and not out.exists()
    assert children() == before


SLOW_MODEL = textwrap.dedent("""
    import time
    import torch.nn as nn

    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(0.05)  # a slow network, so that the run is still going when the signal comes
            return x

    def build():
        return nn.Sequential(Slow(), nn.Conv2d(3, 4, 2, stride=2))
""")


@pytest.mark.skipif(not HAS_PROC, reason="reads /proc")
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_no_worker_outlives_a_signal_to_the_process_group(tmp_path, signum, code):
    folder = write_noise_photos(tmp_path / "photos", 200, (18, 18))
    (tmp_path / "slow.py").write_text(SLOW_MODEL)
    args = ["report", "--model", f"{tmp_path / 'slow.py'}:build", "--size", "16", "--layers", "1", "--no-logits",
            "--batch-size", "1", "--workers", "2", "--images", str(folder), "--out", str(tmp_path / "rep"), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gradviz", *args], env=env, start_new_session=True,
                            preexec_fn=default_signals, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(children(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(children(proc.pid)) == 2, "the two workers never started"
        time.sleep(0.3)  # a few batches in
        os.killpg(proc.pid, signum)  # the whole group, as Ctrl-C in a terminal or a job scheduler does
        _, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, err[-2000:]
    assert len(err.strip().splitlines()) == 1 and "partial outputs removed" in err
    assert in_group(proc.pid) == set() and not (tmp_path / "rep").exists()


def test_a_file_backed_set_splits_between_ranks(tree):
    images = load_images(tree, size=32, workers=2, max_images=4, seed=1)
    whole = images.images
    parts = [images.shard(0, 2), images.shard(2, 3), images.shard(3, 4)]
    assert [p.names for p in parts] == [images.names[:2], images.names[2:3], images.names[3:]]
    assert all(p.workers == 2 and p.files is not None and p.source == images.source for p in parts)
    assert torch.equal(torch.cat([b for p in parts for b in p.batches(2)]), whole)
