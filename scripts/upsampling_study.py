"""Upsampling study (issue 5): overlap arithmetic, generators at init, discriminator gradients, a short GAN.

    python scripts/upsampling_study.py --out figures/upsampling --seed 0

Writes study.json (every number), summary.md (the tables quoted in docs/upsampling.md) and the
figures overlap.png, generators.png, discriminator.png, gan_training.png, gan_samples.png.
Runs in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from gradviz.gan import FIRST_LAYERS, GanSettings, measure_discriminator, pick_patches, photo_patches, plot_gradients, plot_training, train_gan
from gradviz.generators import GeneratorResult, measure_generator, plot_samples, sample_images
from gradviz.outputs import atomic_dir, write_json
from gradviz.overlap import analyse_overlap, plot_overlap, stack
from gradviz.spectrum import checkerboard_metrics

OVERLAP_CASES = {
    "k3 s2": stack(3, 2),
    "k4 s2": stack(4, 2),
    "k5 s2": stack(5, 2),
    "k4 s3": stack(4, 3),
    "k5 s3": stack(5, 3),
    "k3 s2 x2": stack(3, 2, layers=2),
    "k3 s2 x3": stack(3, 2, layers=3),
    "k3 s2 + final 2": stack(3, 2, final=2),
    "k3 s2 + final 3": stack(3, 2, final=3),
    "k3 s2 x2 + final 2": stack(3, 2, layers=2, final=2),
    "k3 s2 x2 + final 3": stack(3, 2, layers=2, final=3),
    "binomial [1,4,6,4,1] s2": stack([1.0, 4.0, 6.0, 4.0, 1.0], 2),
}
DESIGNS = [
    "deconv3", "deconv4", "deconv5", "deconv3-last2", "deconv3-last1", "deconv4-last2", "deconv4-last1",
    "deconv3+final3", "deconv4+final3", "nearest", "bilinear", "subpixel", "subpixel-icnr", "nearest+final3",
]
GRID_DESIGNS = ["deconv3", "deconv4", "deconv4-last2", "deconv4-last1", "subpixel", "subpixel-icnr", "nearest", "bilinear"]
GAN_FIRST_LAYERS = ["stride2", "conv+pool"]


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "values": values}


def fmt(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def overlap_part(out, study: dict, lines: list[str]) -> None:
    reports = {name: analyse_overlap(layers).to_dict() for name, layers in OVERLAP_CASES.items()}
    study["overlap"] = reports
    plot_overlap(stack(3, 2, layers=2, final=2), out / "overlap.png")
    lines += ["## Overlap (exact arithmetic)", "",
              "| stack | period | pattern | max/min 1D | max/min 2D | lines abs(C[q])/C[0] | 2D non-DC/DC power |",
              "|---|---|---|---|---|---|---|"]
    for name, r in reports.items():
        ratio1 = "inf" if r["ratio_1d"] is None else f"{r['ratio_1d']:.4g}"
        ratio2 = "inf" if r["ratio_2d"] is None else f"{r['ratio_2d']:.4g}"
        pattern = ", ".join(f"{c:g}" for c in r["pattern"])
        lr = ", ".join(f"{x:.4g}" for x in r["line_ratios_1d"][1:])
        lines.append(f"| {name} | {r['period']} | {pattern} | {ratio1} | {ratio2} | {lr} | {r['nondc_over_dc_2d']:.4g} |")
    lines.append("")


def generator_part(out, study: dict, lines: list[str], seeds: list[int], samples: int) -> None:
    rows, grid = {}, []
    for design in DESIGNS:
        per_seed = []
        for seed in seeds:
            result, images = measure_generator(design, samples=samples, seed=seed)
            per_seed.append(result.to_dict())
            if seed == seeds[0] and design in GRID_DESIGNS:
                grid.append((result, images))
        m = [r["metrics"] for r in per_seed]
        rows[design] = {
            "runs": per_seed,
            "lattice_fraction": spread([x["lattice_fraction"] for x in m]),
            "period2_fraction": spread([x["octave_fractions"][0] for x in m]),
            "tile_contrast": spread([x["tile_contrast"] for x in m]),
            "coherent_lattice_fraction": spread([x["coherent_lattice_fraction"] for x in m]),
        }
        print(f"  {design:16s} lattice {fmt(rows[design]['lattice_fraction'])}", file=sys.stderr)
    grid.sort(key=lambda rg: GRID_DESIGNS.index(rg[0].design))
    plot_samples(grid, out / "generators.png")
    study["generators"] = {"seeds": seeds, "samples": samples, "image_size": 32, "period": 8,
                           "null_fraction": m[0]["null_fraction"], "designs": rows}
    lines += ["## Generators at initialisation", "",
              f"32x32 RGB outputs, period 8, {samples} latent vectors per seed, seeds {seeds}; mean (min-max) over seeds. "
              f"White-noise null lattice fraction {m[0]['null_fraction']:.4f}, period-2 null {m[0]['octave_null_fractions'][0]:.4f}.", "",
              "| design | lattice fraction | period-2 fraction | tile max/min | coherent lattice fraction |", "|---|---|---|---|---|"]
    for design, r in rows.items():
        lines.append(f"| {design} | {fmt(r['lattice_fraction'])} | {fmt(r['period2_fraction'])} | "
                     f"{fmt(r['tile_contrast'], 2)} | {fmt(r['coherent_lattice_fraction'])} |")
    lines.append("")


def discriminator_part(out, study: dict, lines: list[str], seeds: list[int], n_images: int) -> None:
    images = pick_patches(n_images, seeds[0])
    rows, shown = {}, {}
    for first in FIRST_LAYERS:
        runs = []
        for seed in seeds:
            m, grad = measure_discriminator(first, images, seed=seed)
            runs.append(m.to_dict())
            if seed == seeds[0]:
                shown[first] = grad
        rows[first] = {
            "runs": runs,
            "lattice_fraction": spread([r["lattice_fraction"] for r in runs]),
            "period2_fraction": spread([r["octave_fractions"][0] for r in runs]),
            "tile_contrast": spread([r["tile_contrast"] for r in runs]),
            "hf_offlattice_fraction": spread([r["hf_offlattice_fraction"] for r in runs]),
        }
    plot_gradients(shown, out / "discriminator.png")
    null = runs[0]
    study["discriminator"] = {"seeds": seeds, "images": n_images, "period": 8, "first_layers": rows}
    lines += ["## Discriminator input gradients at initialisation", "",
              f"{n_images} photo patches (32x32), period 8, seeds {seeds}; mean (min-max) over seeds. "
              f"Nulls: lattice {null['null_fraction']:.4f}, period-2 {null['octave_null_fractions'][0]:.4f}, "
              f"top-octave off-lattice {null['hf_offlattice_null']:.3f}.", "",
              "| first layer | lattice fraction | period-2 fraction | tile max/min | top-octave off-lattice |", "|---|---|---|---|---|"]
    for first, r in rows.items():
        lines.append(f"| {first} | {fmt(r['lattice_fraction'])} | {fmt(r['period2_fraction'], 4)} | "
                     f"{fmt(r['tile_contrast'], 2)} | {fmt(r['hf_offlattice_fraction'])} |")
    lines.append("")


def gan_part(out, study: dict, lines: list[str], seeds: list[int], steps: int, eval_every: int) -> None:
    data = photo_patches()
    real = checkerboard_metrics(data, 8)
    results, finals = {}, []
    for first in GAN_FIRST_LAYERS:
        results[first] = []
        for seed in seeds:
            settings = GanSettings(first_layer=first, generator="nearest", steps=steps, eval_every=eval_every, seed=seed)
            result, gen = train_gan(settings, data)
            results[first].append(result)
            if seed == seeds[0]:
                finals.append((first, gen))
    plot_training(results, out / "gan_training.png")
    grid = []
    for first, gen in finals:
        images = sample_images(gen, 64, seed=123)
        m = checkerboard_metrics(images, 8)
        grid.append((GeneratorResult(f"D {first}, step {steps}", seeds[0], 64, 32, m), images))
    plot_samples(grid, out / "gan_samples.png", title=f"generator samples after {steps} training steps")
    study["gan"] = {
        "data": {"patches": len(data), "size": 32, "metrics": real.to_dict()},
        "runs": {first: [r.to_dict() for r in runs] for first, runs in results.items()},
    }
    lines += ["## Short GAN: generator nearest resize-conv, discriminator first layer stride 2 vs conv+pool", "",
              f"{len(data)} photo patches, {steps} steps of batch 32, seeds {seeds}. Real patches: lattice fraction "
              f"{real.lattice_fraction:.4f}, period-2 fraction {real.octave_fractions[0]:.4f}.", "",
              "| D first layer | seed | G outputs lattice (step 0 -> end) | G outputs period-2 (0 -> end) | "
              "G period-2 max over training | D-gradient period-2 (0 -> end) | D-gradient period-2 mean over training |",
              "|---|---|---|---|---|---|---|"]
    for first, runs in results.items():
        for r in runs:
            o = [m.lattice_fraction for m in r.output_metrics]
            o2 = [m.octave_fractions[0] for m in r.output_metrics]
            g2 = [m.octave_fractions[0] for m in r.gradient_metrics]
            lines.append(f"| {first} | {r.settings.seed} | {o[0]:.4f} -> {o[-1]:.4f} | {o2[0]:.4f} -> {o2[-1]:.4f} | "
                         f"{max(o2):.4f} | {g2[0]:.4f} -> {g2[-1]:.4f} | {statistics.fmean(g2[1:]):.4f} |")
    lines.append("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/upsampling")
    parser.add_argument("--seed", type=int, default=0, help="first seed; parts use seed, seed+1, ...")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the measurements at init")
    parser.add_argument("--gan-seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)  # robust when the 2 cores are shared; threads that spin-wait thrash
    torch.set_flush_denormal(True)
    seeds = list(range(args.seed, args.seed + args.seeds))
    started = time.time()
    study: dict = {"script": "scripts/upsampling_study.py", "args": vars(args)}
    lines = [f"<!-- written by scripts/upsampling_study.py {' '.join(sys.argv[1:])} -->", ""]
    with atomic_dir(args.out) as out:
        print("overlap", file=sys.stderr)
        overlap_part(out, study, lines)
        print("generators", file=sys.stderr)
        generator_part(out, study, lines, seeds, samples=64)
        print("discriminator", file=sys.stderr)
        discriminator_part(out, study, lines, seeds, n_images=64)
        print("gan", file=sys.stderr)
        gan_part(out, study, lines, list(range(args.seed, args.seed + args.gan_seeds)), args.steps, args.eval_every)
        study["seconds"] = time.time() - started
        write_json(out / "study.json", study)
        (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} in {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
