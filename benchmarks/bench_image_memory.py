"""Peak memory against the number of images: gradviz's streamed report against a bare loop that
holds every image, side by side in one run.

Two studies; each run is a fresh process and its figure is its peak resident memory (``ru_maxrss``).

``--stream`` (the whole ``gradviz report`` command, 16 against 1,024 images): ResNet18 (random init, seed 0)
at 96 px, layers ``layer1`` and ``layer2`` (DeepDream objective), batches of 8, one CPU thread, over
seeded uniform-noise PNGs of 96 to 128 px on a side in eight class folders (an ImageFolder-style tree, read
recursively). gradviz runs the command in-process (headers read up front, pixels batch by batch, figures and
pages written), once decoding in the main process and once with ``--workers 2`` (the main process's peak;
the workers are processes of their own); the bare loop reads every file into one tensor, then computes the
same input gradients batch by batch. Each is run five times, interleaved (peaks vary by a few tens of MB
from run to run); printed as the ratio of the median peak at 1,024 images to that at 16. (ResNet18 rather than VGG11: a random VGG11, 133 M parameters, puts every run
near 2 GB, where the images hardly register.)

Default (photos): the input gradient of ResNet18's (random init, seed 0) layer2 mean squared activation,
for N photographs read from PNG files (crops of scikit-image's bundled photographs, 280 px, written to a
temporary folder), resized to 224 px, in batches of 8, on the CPU. gradviz streams the files
(``load_images`` + ``build_report``, which also accumulates the spectra and runs the tests); the bare loop
reads every file into one tensor first, as a plain PyTorch or captum loop over a stacked dataset does.

    python benchmarks/bench_image_memory.py            # writes benchmarks/results/image_memory_cpu.json
    python benchmarks/bench_image_memory.py --stream   # writes benchmarks/results/image_memory_stream_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

COUNTS = (16, 256)
SIZE = 224
OUT = Path(__file__).resolve().parent / "results" / "image_memory_cpu.json"

STREAM_COUNTS = (16, 1024)
STREAM_MODEL = "resnet18"
STREAM_SIZE = 96
STREAM_LAYERS = "layer1,layer2"
STREAM_OUT = OUT.parent / "image_memory_stream_cpu.json"
# Files of 96 to 128 px on a side (both sides drawn), so that every image is resized and cropped.
SIDES = (96, 128)
CLASSES = 8

STREAM_CHILD = r"""
import os, resource, sys, time
t0 = time.perf_counter()
mode, folder, size, layers, out, arch = sys.argv[1:]
size, layers = int(size), layers.split(",")
if mode.startswith("gradviz"):
    from gradviz.cli import main
    workers = mode.split(":")[1]
    rc = main(["report", "--model", arch, "--weights", "random", "--size", str(size), "--layers", ",".join(layers),
               "--batch-size", "8", "--images", folder, "--workers", workers, "--device", "cpu", "--out", out,
               "--quiet"])
    assert rc == 0, rc
else:
    import torch
    torch.set_num_threads(1)
    from gradviz.core.gradients import input_gradients
    from gradviz.core.models import load_model
    from gradviz.core.objectives import deepdream
    from gradviz.io.images import read_image, resize_square
    from pathlib import Path
    model = load_model(arch, "random", seed=0, device="cpu")
    files = sorted(Path(folder).rglob("*.png"))
    images = torch.stack([resize_square(read_image(f), size) for f in files])   # every image held
    for start in range(0, len(images), 8):
        input_gradients(model, images[start:start + 8], {name: deepdream(name) for name in layers})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, round(time.perf_counter() - t0, 1))
"""

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


def write_noise_tree(folder: Path, n: int) -> None:
    """``n`` seeded uniform-noise PNGs of ``SIDES`` px on a side, spread over ``CLASSES`` class folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = rng.integers(SIDES[0], SIDES[1] + 1, size=2)
        target = folder / f"class{i % CLASSES}"
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(target / f"{i:05d}.png")


def stream_peak(mode: str, folder: Path, out: Path) -> tuple[int, float]:
    """(peak resident bytes, seconds) of one fresh run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", STREAM_CHILD, mode, str(folder), str(STREAM_SIZE), STREAM_LAYERS,
                           str(out), STREAM_MODEL], check=True, capture_output=True, text=True, env=env)
    peak, seconds = done.stdout.strip().splitlines()[-1].split()
    return int(peak), float(seconds)


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.machine())
    return f"{cpu}, {os.cpu_count()} cores, no GPU used, 1 thread"


def main_stream(repeats: int) -> None:
    modes = {"gradviz": "gradviz:0", "gradviz_workers2": "gradviz:2", "bare": "bare"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in STREAM_COUNTS:
            folder = Path(tmp) / f"images{n}"
            write_noise_tree(folder, n)
            runs = {key: [] for key in modes}
            for r in range(repeats):  # interleaved, so that a slow spell of the machine hits every mode
                for key, mode in modes.items():
                    runs[key].append(stream_peak(mode, folder, Path(tmp) / f"out-{key}-{n}-{r}"))
            row = {"images": n}
            for key in modes:
                own = [run[0] for run in runs[key]]
                row[f"{key}_peak_bytes"] = int(statistics.median(own))
                row[f"{key}_peak_bytes_runs"] = own
                row[f"{key}_seconds"] = statistics.median(run[1] for run in runs[key])
            rows.append(row)
            print({k: v for k, v in row.items() if not k.endswith("_runs")}, flush=True)
    first, last = rows
    ratios = {key: last[f"{key}_peak_bytes"] / first[f"{key}_peak_bytes"] for key in modes}
    result = {
        "what": "Peak resident memory of `gradviz report` over 16 and 1,024 images against a loop holding every image",
        "machine": machine(),
        "model": f"{STREAM_MODEL}, random init (seed 0)",
        "layers": STREAM_LAYERS.split(","),
        "image_size": STREAM_SIZE,
        "file_sides": list(SIDES),
        "batch_size": 8,
        "repeats": repeats,
        "statistic": "median of the repeats (each a fresh process); every run's figure under *_runs",
        "rows": rows,
        "ratio_last_to_first": ratios,
        "growth_bytes": {key: last[f"{key}_peak_bytes"] - first[f"{key}_peak_bytes"] for key in modes},
        "held_images_bytes": last["images"] * 3 * STREAM_SIZE * STREAM_SIZE * 4,
        "largest_spread_bytes": max(max(r[f"{k}_peak_bytes_runs"]) - min(r[f"{k}_peak_bytes_runs"])
                                    for r in rows for k in modes),
    }
    STREAM_OUT.parent.mkdir(exist_ok=True)
    STREAM_OUT.write_text(json.dumps(result, indent=2) + "\n")
    mb = 1e6
    print(f"peak memory, {last['images']} images against {first['images']} (ratio of medians; growth):")
    for key in modes:
        print(f"  {key:>18}: {ratios[key]:.3f}x  ({result['growth_bytes'][key] / mb:+.0f} MB, "
              f"{first[key + '_peak_bytes'] / mb:.0f} -> {last[key + '_peak_bytes'] / mb:.0f} MB)")
    print(f"  largest run-to-run spread of one mode at one count: {result['largest_spread_bytes'] / mb:.0f} MB")
    print(f"  the {last['images']} images held at {STREAM_SIZE} px: {result['held_images_bytes'] / mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--stream", action="store_true", help="the whole report command, 16 against 1,024 images")
    parser.add_argument("--repeats", type=int, default=5, help="--stream: runs per mode and count (default: 5)")
    args = parser.parse_args()
    if args.stream:
        main_stream(args.repeats)
    else:
        main_photos()


def main_photos() -> None:
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
