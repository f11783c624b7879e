"""Channel sweeps: one image per channel, whatever the batches or the number of processes; the folder written;
bad channel lists refused."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from gradviz.cli import main
from gradviz.core.objectives import channel
from gradviz.io.outputs import is_gradviz_file
from gradviz.optvis.dream import DreamSettings, dream
from gradviz.optvis.parameterization import start_images
from gradviz.optvis.render import to_uint8
from gradviz.optvis.sweep import channel_seed, parse_channels, resolve_channels, sweep, sweep_batches

LAYER = "features.10"  # vgg11: relu after conv4_1, stride 8, 256 channels
# Two processes each import torch and build a small VGG: well under a minute on 2 cores.
TIMEOUT_S = 240
ARGS = ["dream", "--model", "vgg11", "--weights", "random", "--size", "32", "--steps", "2", "--layer", LAYER,
        "--jitter", "2", "--device", "cpu"]
FILES = [".gradviz.json", "channel-0003.png", "channel-0007.png", "channel-0009.png", "channel-0010.png",
         "contact.png", "index.html", "sweep.json"]


class Pooled(nn.Module):
    """Per-channel scale, then two 2x2 average pools (stride 4): every op is computed image by image, so the
    batch cannot change a bit of the result, and any difference comes from the random draws."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.0, -2.0, 3.0, 0.5]).view(1, 4, 1, 1), requires_grad=False)
        self.net = nn.Sequential(nn.AvgPool2d(2), nn.Tanh(), nn.AvgPool2d(2))

    def forward(self, x):
        return self.net(torch.cat([x, x[:, :1]], 1) * self.scale)


def test_channel_lists_read_like_slices():
    assert resolve_channels(parse_channels("0:4"), 8) == [0, 1, 2, 3]
    assert resolve_channels(parse_channels(":3,6:"), 8) == [0, 1, 2, 6, 7]
    assert resolve_channels(parse_channels("1:8:3"), 8) == [1, 4, 7]
    assert resolve_channels(parse_channels("5, 2"), 8) == [5, 2]
    assert sweep_batches([3, 7, 9, 10, 11], 2) == [[3, 7], [9, 10], [11]]


def test_channel_seeds_depend_on_seed_and_channel_only():
    seeds = {channel_seed(s, c) for s in range(4) for c in range(64)}
    assert len(seeds) == 4 * 64 and all(0 <= s < 2**63 for s in seeds)
    assert channel_seed(0, 1) != channel_seed(1, 0)


@pytest.mark.parametrize("extra", [dict(jitter=3), dict(jitter=2, scales=(0.75, 1.0, 1.25), angles=(-10.0, 10.0)),
                                   dict(crop_jitter=2, optimizer="adam", parameterization="fourier")])
def test_each_channels_draws_do_not_depend_on_its_batch(extra):
    model = Pooled()
    settings = DreamSettings(steps=3, progress=False, **extra)
    images = {b: torch.stack([d.image for d in sweep(model, "net.2", [0, 3, 1, 2], settings, 32, batch_size=b)])
              for b in (1, 2, 4)}
    assert torch.equal(images[1], images[4]) and torch.equal(images[2], images[4])  # exact tensors
    moved = sweep(model, "net.2", [0, 3, 1, 2], replace(settings, seed=1), 32, batch_size=4)
    assert not torch.equal(torch.stack([d.image for d in moved]), images[4])


def test_a_channel_in_batches_of_one_is_the_single_dream_with_its_seed(vgg11):
    settings = DreamSettings(steps=2, jitter=2, progress=False)
    alone = sweep(vgg11, LAYER, [3, 7, 9, 10], settings, 32, batch_size=1)
    four = sweep(vgg11, LAYER, [3, 7, 9, 10], settings, 32, batch_size=4)
    for a, b in zip(alone, four):
        s = channel_seed(0, a.channel)
        single = dream(vgg11, channel(LAYER, a.channel), start_images("noise", 32, seed=s),
                       DreamSettings(steps=2, jitter=2, progress=False, seed=s))
        assert a.seed == s and torch.equal(a.image, single.images[0])  # the same arithmetic, bit for bit
        assert a.update_metrics.lattice_fraction == pytest.approx(single.update_metrics().lattice_fraction, rel=1e-9)
        # in a batch of four the convolutions round differently (oneDNN's batch-1 kernels differ): the last float bits
        torch.testing.assert_close(b.image, a.image, atol=1e-5, rtol=0)
        assert np.abs(to_uint8(b.image[None]).astype(int) - to_uint8(a.image[None])).max() <= 1
        assert b.objective_end > b.objective_start


def _run(tmp_path, name, *extra):
    return main(ARGS + ["--channels", "3,7,9:11", "--quiet", "--out", str(tmp_path / name), *extra])


def test_the_folder_holds_each_channel_a_contact_sheet_a_page_and_the_record(tmp_path):
    assert _run(tmp_path, "a", "--batch-size", "4") == 0 and _run(tmp_path, "b", "--batch-size", "4") == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert sorted(p.name for p in a.iterdir()) == FILES
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in FILES[1:])  # same seed, same bytes
    assert all(is_gradviz_file(a / f) for f in FILES[1:])
    record = json.loads((a / "sweep.json").read_text())
    assert [c["channel"] for c in record["channels"]] == [3, 7, 9, 10]
    assert [c["seed"] for c in record["channels"]] == [channel_seed(0, c) for c in (3, 7, 9, 10)]
    assert (record["layer"], record["batch_size"], record["settings"]["steps"]) == (LAYER, 4, 2)
    assert all(c["update_metrics"]["stride"] == 8 and 0 < c["update_metrics"]["lattice_fraction"] < 1
               for c in record["channels"])
    page = (a / "index.html").read_text()
    assert all(f'src="channel-{c:04d}.png"' in page for c in (3, 7, 9, 10)) and 'src="contact.png"' in page
    # a gradviz folder is replaced; another seed gives other images
    assert _run(tmp_path, "a", "--seed", "1") == 0
    assert (a / "channel-0003.png").read_bytes() != (b / "channel-0003.png").read_bytes()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--channels", "4-9"], "cannot read '4-9'"),
        (["--channels", "0:2", "--channel", "1"], "--channel and --channels both given"),
        (["--channels", "0:2", "--objective", "deepdream"], "--objective channel or neuron"),
        (["--channels", "0:2", "--out", "OUT.png"], "--out is a folder"),
        (["--channels", "0:999"], "layer features.10 has 256 channels"),
        (["--channels", "3,1:4"], "channel 3 is named twice"),
        (["--channel", "1", "--batch-size", "2"], "--batch-size sets the batches of a --channels sweep"),
    ],
)
def test_bad_channel_lists_are_refused_in_one_line_and_leave_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "sweep"
    extra = [str(tmp_path / "sweep.png") if e == "OUT.png" else e for e in extra]
    rc = main(ARGS + ["--quiet", "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0] and "valid" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_torchrun_with_two_processes_writes_the_same_images(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    args = ARGS + ["--channels", "3,7,9:11", "--batch-size", "2"]
    one = subprocess.run([sys.executable, "-m", "gradviz", *args, "--out", str(tmp_path / "one"), "--quiet"],
                         env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "gradviz", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1 and "over 2 processes" in two.stdout  # rank 0 alone writes
    a, b = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir()) == FILES
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in FILES if f.endswith(".png"))
    single, multi = json.loads((a / "sweep.json").read_text()), json.loads((b / "sweep.json").read_text())
    assert multi.pop("distributed") == {"world_size": 2, "batches_per_rank": [1, 1]} and single == multi
