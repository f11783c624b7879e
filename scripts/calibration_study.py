"""How well the grid tests are calibrated: false positives on grid-free fields, power on planted grids.

Fields (gradviz.spectrum.synthetic.FIELDS): white, 1/f, 1/f^2, 1/f^3, Gaussian-blurred (sigma 2), blue (the
Laplacian of white noise) and heavy-tailed (Student-t, 3 degrees of freedom, shaped 1/f); every field is
a batch of --images maps of 3 channels at --size px, drawn larger and cropped so it is not periodic.
For each kind and period S = 2 .. 32, --fields batches; then grids holding 1e-3 and 1e-4 of the energy
on 1/f^2 fields (line test), and shared energy tiles of strength 0.1 and 0.3 (tile test).

Writes figures/calibration/calibration.json and calibration.md.

    python scripts/calibration_study.py [--fields 20] [--images 4] [--size 128]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch

from gradviz.io.outputs import atomic_dir, json_ready, write_json
from gradviz.spectrum.calibration import STRIDES, calibrate, power
from gradviz.spectrum.synthetic import FIELDS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", type=int, default=20, help="batches per field kind and period (default: 20)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="figures/calibration")
    args = p.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    settings = dict(n_images=args.images, channels=3, size=args.size, seed=args.seed)
    rows = calibrate(tuple(FIELDS), STRIDES, n_fields=args.fields, **settings)
    powers = []
    for share in (1e-3, 1e-4):
        powers += power("line", "1/f^2", STRIDES, share, n_fields=args.fields, **settings)
    for strength in (0.1, 0.3):
        powers += power("tile", "1/f^2", STRIDES, strength, n_fields=args.fields, **settings)

    lines = [
        f"<!-- written by scripts/calibration_study.py --fields {args.fields} --images {args.images} --size {args.size} -->",
        "",
        f"Each cell: false positives at alpha 0.05 over {args.fields} grid-free batches of {args.images} maps x 3 "
        f"channels at {args.size} px (line test / tile test; - where the maps are too small for the tile test), and the "
        f"median line excess (1 = no grid).",
        "",
        "| field | " + " | ".join(f"S={s}" for s in STRIDES) + " | all |",
        "|---|" + "---|" * (len(STRIDES) + 1),
    ]
    for name in FIELDS:
        mine = [r for r in rows if r.field == name]
        cells = [f"{r.line_false_positives}/{r.tile_false_positives if r.tile_tested else '-'} ({r.median_excess:.2f})"
                 for r in mine]
        n = sum(r.n_fields for r in mine)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(r.line_false_positives for r in mine) / n:.1%} / "
                     f"{sum(r.tile_false_positives for r in mine) / max(1, sum(r.tile_tested for r in mine)):.1%} |")
    n_line = sum(r.n_fields for r in rows)
    n_tile = sum(r.tile_tested for r in rows)
    fp_line = sum(r.line_false_positives for r in rows)
    fp_tile = sum(r.tile_false_positives for r in rows)
    lines += ["", f"Overall: line test {fp_line}/{n_line} = {fp_line / n_line:.1%}, tile test {fp_tile}/{n_tile} = "
              f"{fp_tile / n_tile:.1%} false positives.", "",
              "Power on 1/f^2 fields (detected / batches tested; the tile test needs 4 periods inside the "
              "interior, so S = 32 needs maps of 256 px):", "",
              "| test | planted | " + " | ".join(f"S={s}" for s in STRIDES) + " |",
              "|---|---|" + "---|" * len(STRIDES)]
    for test, strength in (("line", 1e-3), ("line", 1e-4), ("tile", 0.1), ("tile", 0.3)):
        mine = [r for r in powers if r.test == test and r.strength == strength]
        what = f"grid holding {strength:g} of the energy" if test == "line" else f"shared tile, strength {strength:g}"
        lines.append(f"| {test} | {what} | " + " | ".join(f"{r.detected}/{r.tested}" if r.tested else "not testable" for r in mine) + " |")
    lines += ["", "What the old readings say on the same grid-free batches (medians; neither is a test): the lattice "
              "share over the share a flat spectrum would have, and the pooled energy tile's max/min.", "",
              "| field | " + " | ".join(f"S={s}" for s in STRIDES) + " |", "|---|" + "---|" * len(STRIDES)]
    for name in FIELDS:
        mine = [r for r in rows if r.field == name]
        lines.append(f"| {name} | " + " | ".join(f"{r.median_flat_ratio:.2f} / {r.median_tile_contrast:.1f}" for r in mine) + " |")
    with atomic_dir(args.out) as out:
        write_json(out / "calibration.json", json_ready({
            "script": "scripts/calibration_study.py", "args": vars(args), "seconds": time.time() - started,
            "false_positives": [asdict(r) for r in rows], "power": [asdict(r) for r in powers],
        }))
        (out / "calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
