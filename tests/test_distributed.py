"""Reports over several processes: torchrun with 2 gloo processes on the CPU gives the single-process report
(to float rounding), rank 0 alone writes, and the images are shared out contiguously, each exactly once."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import write_noise_photos
from gradviz.core.distributed import Group, shard_bounds
from gradviz.spectrum import SpectrumAccumulator

# Two processes each import torch and build a small VGG: well under a minute on 2 cores.
TIMEOUT_S = 240


@pytest.mark.parametrize("n", [1, 2, 5, 7, 64])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_every_image_goes_to_exactly_one_rank_in_order(n, world):
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in rank order
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_shards_merged_in_rank_order_give_the_single_run_metrics_tiles_included():
    g = torch.randn(7, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g[:, :, ::2, ::2] += 0.3
    whole = SpectrumAccumulator(4)
    whole.add(g)
    merged = SpectrumAccumulator(4)
    for rank in range(3):
        start, stop = shard_bounds(7, rank, 3)
        part = SpectrumAccumulator(4)
        if stop > start:
            part.add(g[start:stop])
        merged.merge(part)
    a, b = whole.metrics(seed=3), merged.metrics(seed=3)
    assert a.octave_p_values == b.octave_p_values and a.tile_p_value == b.tile_p_value
    assert a.octave_excess == pytest.approx(b.octave_excess, rel=1e-12)
    assert a.shared_tile_cv == pytest.approx(b.shared_tile_cv, rel=1e-12)


def test_a_rank_uses_its_own_gpu_only_when_there_are_gpus():
    assert Group(1, 2, local_rank=1).device("cpu") == "cpu"
    expected = "cuda:1" if torch.cuda.is_available() else "auto"
    assert Group(1, 2, local_rank=1).device("auto") == expected


def compare(single, multi, path=""):
    """Field by field: floats to rounding, everything else (p-values included) exactly."""
    if isinstance(single, dict):
        assert set(single) == set(multi), path
        for key in single:
            compare(single[key], multi[key], f"{path}.{key}")
    elif isinstance(single, list):
        assert len(single) == len(multi), path
        for i, (a, b) in enumerate(zip(single, multi)):
            compare(a, b, f"{path}[{i}]")
    elif isinstance(single, float) and "p_value" not in path and "p_adjusted" not in path:
        assert math.isclose(single, multi, rel_tol=1e-9, abs_tol=1e-300), path
    else:
        assert single == multi, path


def test_torchrun_with_two_processes_equals_one_process(tmp_path):
    photos = write_noise_photos(tmp_path / "photos", 5, (70, 70))
    args = ["report", "--model", "vgg11", "--weights", "random", "--size", "64", "--images", str(photos),
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    single = subprocess.run([sys.executable, "-m", "gradviz", *args, "--out", str(tmp_path / "one"), "--quiet"],
                            env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert single.returncode == 0, single.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "gradviz", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1  # rank 0 alone prints and writes
    a = json.loads((tmp_path / "one" / "report.json").read_text())
    b = json.loads((tmp_path / "two" / "report.json").read_text())
    assert b.pop("distributed") == {"world_size": 2, "images_per_rank": [3, 2]} and "distributed" not in a
    compare(a, b)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
