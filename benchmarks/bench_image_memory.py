"""Peak memory against the number of images: gradviz's streamed report against a bare loop that
holds every image, side by side in one run.

Both measure the same thing: the input gradient of ResNet18's (random init, seed 0) layer2 mean
squared activation, for N photographs read from PNG files (crops of scikit-image's bundled
photographs, 280 px, written to a temporary folder), resized to 224 px, in batches of 8, on the
CPU. gradviz streams the files (``load_images`` + ``build_report``, which also accumulates the
spectra and runs the tests); the bare loop reads every file into one tensor first, as a plain
PyTorch or captum loop over a stacked dataset does. Each run is a fresh process; the figure is
its peak resident memory (``ru_maxrss``).

    python benchmarks/bench_image_memory.py            # writes benchmarks/results/image_memory_cpu.json
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

COUNTS = (16, 256)
SIZE = 224
OUT = Path(__file__).resolve().parent / "results" / "image_memory_cpu.json"

CHILD = r"""
import resource, sys, torch
torch.set_num_threads(1)
from gradviz.io.images import load_images, read_image, resize_square
from gradviz.core.models import load_model
from gradviz.core.objectives import deepdream
from gradviz.core.gradients import input_gradients
mode, folder, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = load_model("resnet18", "random", seed=0, device="cpu")
if mode == "gradviz":
    from gradviz.report import build_report
    build_report(model, load_images(folder, size=size), layers=["layer2"], batch_size=8, progress=False)
else:
    from pathlib import Path
    files = sorted(Path(folder).glob("*.png"))
    images = torch.stack([resize_square(read_image(f), size) for f in files])   # every image held
    for start in range(0, len(images), 8):
        input_gradients(model, images[start:start + 8], {"layer2": deepdream("layer2")})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def write_photos(folder: Path, n: int) -> None:
    import skimage.data

    sources = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    rng = np.random.default_rng(0)
    for i in range(n):
        src = sources[i % len(sources)]
        top, left = rng.integers(0, src.shape[0] - 280), rng.integers(0, src.shape[1] - 280)
        Image.fromarray(src[top : top + 280, left : left + 280]).save(folder / f"{i:04d}.png")


def peak(mode: str, folder: Path) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder), str(SIZE)], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in COUNTS:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            write_photos(folder, n)
            row = {"images": n, "gradviz_peak_bytes": peak("gradviz", folder), "bare_peak_bytes": peak("bare", folder)}
            rows.append(row)
            print(row, flush=True)
    first, last = rows[0], rows[-1]
    result = {
        "what": __doc__.strip().splitlines()[0],
        "machine": f"{platform.processor() or platform.machine()}, CPU, 1 thread",
        "image_size": SIZE,
        "rows": rows,
        "growth_bytes": {"gradviz": last["gradviz_peak_bytes"] - first["gradviz_peak_bytes"],
                         "bare": last["bare_peak_bytes"] - first["bare_peak_bytes"]},
        "held_images_bytes": (last["images"] - first["images"]) * 3 * SIZE * SIZE * 4,
        "ratio_at_max": last["gradviz_peak_bytes"] / last["bare_peak_bytes"],
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["growth_bytes"]), f"ratio gradviz/bare at {last['images']} images: {result['ratio_at_max']:.2f}")


if __name__ == "__main__":
    main()
