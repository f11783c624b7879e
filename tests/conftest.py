import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def write_noise_photos(folder: Path, n: int, shape: tuple[int, int], prefix: str = "") -> Path:
    """``n`` seeded uniform-noise RGB PNGs of ``shape`` (H, W) in ``folder`` (created), named ``<prefix><i>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width = len(str(n - 1))
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(folder / f"{prefix}{i:0{width}d}.png")
    return folder
