"""Upsampling study: overlap arithmetic, generators at init, discriminator gradients, a GAN over seeds.

    python scripts/upsampling_study.py --out figures/upsampling --seed 0

Writes study.json (every number), summary.md (the tables quoted in docs/upsampling.md), report.html
(the generators' verdicts, a column per design and a row per seed) and the figures overlap.png, generators.png, generators_excess.png, discriminator.png, gan_training.png,
gan_final.png, gan_samples.png.

Only the calibrated readings of :func:`gradviz.spectrum.checkerboard_metrics` are used: the excess of
the lattice bins over their local background (1 = no grid), its p-values, ``grid_detected``, and the
lattice energy share (a description, not a test). Every random quantity is given as mean +- sd over
seeds (sample sd, n - 1). The GAN arms are compared over seeds with an exact two-sided permutation
test of the difference of the mean log excess (all splits of the runs), and with a two-sided exact
Mann-Whitney U test.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from gradviz.io.outputs import atomic_dir, refresh_manifest, write_json
from gradviz.io.plotting import line_label
from gradviz.spectrum import checkerboard_metrics
from gradviz.upsampling.discriminators import FIRST_LAYERS, PERIOD, measure_discriminator, photo_patches, pick_patches
from gradviz.upsampling.gan import GanSettings, describe_optimiser, train_gan
from gradviz.upsampling.generators import GeneratorResult, measure_generator, sample_images
from gradviz.upsampling.overlap import analyse_overlap, overlap_prefixes, stack
from gradviz.upsampling.page import generator_study_page_html
from gradviz.upsampling.render import (
    excess_figure,
    gan_final_figure,
    plot_gradients,
    plot_overlap,
    plot_samples,
    plot_training,
    save_png,
)

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
GAN_GENERATOR = "nearest"
# The stack drawn in overlap.png.
OVERLAP_FIGURE = stack(3, 2, layers=2, final=2)
# Samples of each trained generator in gan_samples.png, and the seed of their latents.
GAN_SAMPLES, GAN_SAMPLES_SEED = 64, 123
# Real patches measured as a reference are drawn with seeds REAL_SEED_OFFSET + seed.
REAL_SEED_OFFSET = 1000


def spread(values: list[float]) -> dict:
    """Mean and sample sd (n - 1) over seeds, with the values."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else math.nan,
            "n": len(values), "values": values}


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}"


def summarise(ms: list[dict]) -> dict:
    """The per-seed statistics of a list of ``CheckerboardMetrics.to_dict()``."""
    return {
        "lattice_excess": spread([m["lattice_excess"] for m in ms]),
        "period2_excess": spread([m["octave_excess"][0] for m in ms]),
        "period2_p_adjusted": spread([m["octave_p_adjusted"][0] for m in ms]),
        "p_value": spread([m["p_value"] for m in ms]),
        "lattice_fraction": spread([m["lattice_fraction"] for m in ms]),
        "grid_detected": sum(bool(m["grid_detected"]) for m in ms),
        "verdicts": [m["verdict"] for m in ms],
    }


def table_row(name: str, s: dict, n: int) -> str:
    return (f"| {name} | {fmt(s['lattice_excess'])} | {fmt(s['period2_excess'])} | "
            f"{fmt(s['lattice_fraction'], 4)} | {s['grid_detected']}/{n} |")


TABLE_HEAD = ["| {} | lattice excess | period-2 excess | lattice energy share | seeds with grid detected (p < 0.05) |",
              "|---|---|---|---|---|"]


def permutation_test(a: list[float], b: list[float]) -> dict:
    """Exact two-sided permutation test of mean(log a) - mean(log b) over all splits of the pooled runs."""
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    pooled, n = la + lb, len(la)
    observed = statistics.fmean(la) - statistics.fmean(lb)
    total, extreme = 0, 0
    for idx in itertools.combinations(range(len(pooled)), n):
        chosen = set(idx)
        xa = [pooled[i] for i in idx]
        xb = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        d = statistics.fmean(xa) - statistics.fmean(xb)
        total += 1
        extreme += abs(d) >= abs(observed) - 1e-12
    return {"test": "exact two-sided permutation test of the difference of mean log excess",
            "log_difference": observed, "ratio_of_geometric_means": math.exp(observed),
            "p_value": extreme / total, "splits": total}


def mann_whitney(a: list[float], b: list[float]) -> dict:
    from scipy.stats import mannwhitneyu  # scipy only for this test: imported when the GAN part runs

    r = mannwhitneyu(a, b, alternative="two-sided", method="exact")
    return {"test": "exact two-sided Mann-Whitney U", "U": float(r.statistic), "p_value": float(r.pvalue)}


def compare(a: list[float], b: list[float]) -> dict:
    return {"permutation": permutation_test(a, b), "mann_whitney": mann_whitney(a, b)}


def overlap_part(out, study: dict, lines: list[str]) -> None:
    reports = {name: analyse_overlap(layers).to_dict() for name, layers in OVERLAP_CASES.items()}
    study["overlap"] = reports
    plot_overlap(overlap_prefixes(OVERLAP_FIGURE), out / "overlap.png")
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
        rows[design] = {"runs": per_seed, **summarise([r["metrics"] for r in per_seed])}
        print(f"  {design:16s} lattice excess {fmt(rows[design]['lattice_excess'])} "
              f"detected {rows[design]['grid_detected']}/{len(seeds)}", file=sys.stderr)
    grid.sort(key=lambda rg: GRID_DESIGNS.index(rg[0].design))
    size, period = grid[0][0].image_size, grid[0][0].metrics.stride
    plot_samples(grid, out / "generators.png", title=f"generator samples at initialisation, seed {seeds[0]}")
    save_png(excess_figure(rows, f"generators at initialisation: outputs, period {period}, {len(seeds)} seeds "
                                 "(one dot per seed)"), out / "generators_excess.png")
    study["generators"] = {"seeds": seeds, "samples": samples, "image_size": size, "period": period, "designs": rows}
    lines += ["## Generators at initialisation", "",
              f"{size}x{size} RGB outputs, period {period}, {samples} latent vectors per seed, seeds {seeds}; mean ± sd over seeds. "
              "Excess = power of the lattice bins over their local background (1 = no grid).", "",
              TABLE_HEAD[0].format("design"), TABLE_HEAD[1]]
    for design, r in rows.items():
        lines.append(table_row(design, r, len(seeds)))
    lines.append("")
    write_generator_page(out, study["generators"])


def write_generator_page(out: Path, gens: dict) -> None:
    """report.html: the generators' verdicts, a column per design and a row per seed, and their figures."""
    settings = (f"{gens['image_size']}x{gens['image_size']} RGB outputs, period {gens['period']}, {gens['samples']} latent "
                f"vectors per seed; seeds {gens['seeds']}. Made by scripts/upsampling_study.py.")
    figures = [("generators.png", f"samples of the transposed-convolution designs at initialisation, seed {gens['seeds'][0]}"),
               ("generators_excess.png", "excess at each octave per design, one dot per seed")]
    (out / "report.html").write_text(generator_study_page_html(gens["designs"], figures, [settings]))


def discriminator_part(out, study: dict, lines: list[str], seeds: list[int], n_images: int) -> None:
    rows, shown = {}, {}
    for first in FIRST_LAYERS:
        runs = []
        for seed in seeds:
            images = pick_patches(n_images, seed)
            result = measure_discriminator(first, images, seed=seed)
            runs.append(result.metrics.to_dict())
            if seed == seeds[0]:
                shown[first] = result
        rows[first] = {"runs": runs, **summarise(runs)}
        print(f"  {first:14s} lattice excess {fmt(rows[first]['lattice_excess'])}", file=sys.stderr)
    plot_gradients(list(shown.values()), out / "discriminator.png")
    study["discriminator"] = {"seeds": seeds, "images": n_images, "period": PERIOD, "first_layers": rows}
    lines += ["## Discriminator input gradients at initialisation", "",
              f"{n_images} photo patches (32x32) per seed (drawn with the seed), period {PERIOD}, seeds {seeds}; "
              "mean ± sd over seeds.", "",
              TABLE_HEAD[0].format("first layer"), TABLE_HEAD[1]]
    for first, r in rows.items():
        lines.append(table_row(first, r, len(seeds)))
    lines.append("")


def run_summary(r, steps: int) -> dict:
    """Per GAN run: G outputs' and D gradient's period-2 excess at step 0, 500 (if evaluated), the end,
    and the geometric mean over the evaluations in the second half of training."""
    o = [m.octave_excess[0] for m in r.output_metrics]
    g = [m.octave_excess[0] for m in r.gradient_metrics]
    half = [i for i, s in enumerate(r.steps) if s > steps / 2]
    at = {s: i for i, s in enumerate(r.steps)}
    end = r.output_metrics[-1]
    out = {
        "seed": r.settings.seed,
        "g_p2_start": o[0], "g_p2_end": o[-1],
        "g_p2_end_p_adjusted": end.octave_p_adjusted[0], "g_p2_end_p": end.octave_p_values[0],
        "g_lattice_excess_end": end.lattice_excess, "g_p_value_end": end.p_value,
        "g_grid_detected_end": end.grid_detected, "g_lattice_fraction_end": end.lattice_fraction,
        "g_verdict_end": end.verdict,
        "g_p2_second_half_geomean": math.exp(statistics.fmean(math.log(o[i]) for i in half)),
        "g_detected_evals": sum(m.grid_detected for m in r.output_metrics[1:]), "evals": len(r.output_metrics) - 1,
        "d_p2_start": g[0], "d_p2_end": g[-1], "d_p2_end_p_adjusted": r.gradient_metrics[-1].octave_p_adjusted[0],
        "d_lattice_excess_end": r.gradient_metrics[-1].lattice_excess,
        "d_grid_detected_end": r.gradient_metrics[-1].grid_detected,
        "d_p2_second_half_geomean": math.exp(statistics.fmean(math.log(g[i]) for i in half)),
        "d_loss_end": r.d_loss[-1], "g_loss_end": r.g_loss[-1],
    }
    if 500 in at:
        out["g_p2_step500"] = o[at[500]]
        out["g_p2_step500_p_adjusted"] = r.output_metrics[at[500]].octave_p_adjusted[0]
    return out


GAN_KEYS = [
    ("g_p2_end", "G outputs, period-2 excess at the end"),
    ("g_p2_second_half_geomean", "G outputs, period-2 excess, geometric mean over the second half"),
    ("g_lattice_excess_end", "G outputs, lattice excess at the end"),
    ("d_p2_end", "D gradient on G outputs, period-2 excess at the end"),
    ("d_p2_second_half_geomean", "D gradient, period-2 excess, geometric mean over the second half"),
    ("g_p2_step500", "G outputs, period-2 excess at step 500"),
]


def gan_part(out, study: dict, lines: list[str], seeds: list[int], steps: int, eval_every: int, eval_samples: int) -> None:
    data = photo_patches()
    real_runs = [checkerboard_metrics(pick_patches(eval_samples, REAL_SEED_OFFSET + s), PERIOD).to_dict() for s in seeds]
    real = summarise(real_runs)
    results, finals, summ = {}, [], {}
    partial: dict = {}
    base = GanSettings(generator=GAN_GENERATOR, steps=steps, eval_every=eval_every, eval_samples=eval_samples)
    for first in GAN_FIRST_LAYERS:
        results[first], summ[first] = [], []
        for seed in seeds:
            t0 = time.time()
            result, gen = train_gan(dataclasses.replace(base, first_layer=first, seed=seed), data, progress=False)
            results[first].append(result)
            summ[first].append(run_summary(result, steps))
            s = summ[first][-1]
            print(f"  D {first:9s} seed {seed}: G p2 {s['g_p2_start']:.2f} -> {s['g_p2_end']:.2f} "
                  f"(p adj {s['g_p2_end_p_adjusted']:.3g}), D-grad p2 {s['d_p2_end']:.2f}, {time.time() - t0:.0f} s",
                  file=sys.stderr, flush=True)
            partial.setdefault(first, []).append(s)
            with open("/tmp/upsampling_gan_partial.json", "w") as fh:
                json.dump(partial, fh, indent=1, default=str)
            if seed == seeds[0]:
                finals.append((first, gen))
    plot_training(results, out / "gan_training.png")
    save_png(gan_final_figure(summ, real, steps), out / "gan_final.png")
    grid = []
    for first, gen in finals:
        images = sample_images(gen, GAN_SAMPLES, seed=GAN_SAMPLES_SEED)
        m = checkerboard_metrics(images, gen.period)
        grid.append((GeneratorResult(f"D {first}, step {steps}", seeds[0], GAN_SAMPLES, images.shape[-1], m), images))
    plot_samples(grid, out / "gan_samples.png", title=f"generator samples after {steps} training steps, seed {seeds[0]}")
    a, b = GAN_FIRST_LAYERS
    arms = {first: {key: spread([r[key] for r in runs if key in r]) for key, _ in GAN_KEYS if all(key in r for r in runs)}
            for first, runs in summ.items()}
    for first, runs in summ.items():
        arms[first]["g_grid_detected_end"] = sum(bool(r["g_grid_detected_end"]) for r in runs)
        arms[first]["d_grid_detected_end"] = sum(bool(r["d_grid_detected_end"]) for r in runs)
        arms[first]["g_p2_end_p_adjusted"] = spread([r["g_p2_end_p_adjusted"] for r in runs])
    tests = {key: compare([r[key] for r in summ[a]], [r[key] for r in summ[b]])
             for key, _ in GAN_KEYS if key in arms[a] and key in arms[b]}
    study["gan"] = {
        "settings": {"generator": base.generator, "first_layers": GAN_FIRST_LAYERS, "seeds": seeds, "steps": steps,
                     "batch": base.batch, "eval_every": eval_every, "eval_samples": eval_samples, "period": PERIOD,
                     "optimiser": describe_optimiser(), "g_width": base.g_width, "d_width": base.d_width},
        "data": {"patches": len(data), "size": data.shape[-1],
                 "real_reference": {"samples_per_draw": eval_samples, "draw_seeds": [REAL_SEED_OFFSET + s for s in seeds], **real,
                                    "runs": real_runs}},
        "per_run": summ, "arms": arms, "tests": {"comparison": f"{a} vs {b}", "primary": "g_p2_end", **tests},
        "runs": {first: [r.to_dict() for r in runs] for first, runs in results.items()},
    }
    size = data.shape[-1]
    lines += [f"## GAN: generator {base.generator} resize-conv, discriminator first layer {a} vs {b}", "",
              f"{len(data)} photo patches ({size}x{size}), {steps} steps of batch {base.batch}, seeds {seeds}, {eval_samples} generator "
              f"samples per evaluation (every {eval_every} steps). Real patches ({eval_samples} per draw, {len(seeds)} draws): "
              f"period-2 excess {fmt(real['period2_excess'])}, lattice excess {fmt(real['lattice_excess'])}, "
              f"grid detected in {real['grid_detected']}/{len(seeds)} draws.", "",
              "Per run:", "",
              "| D first layer | seed | G period-2 excess (step 0 -> end) | p (Holm) at end | G verdict at end | "
              "G evals with grid detected | D-gradient period-2 excess (0 -> end) |",
              "|---|---|---|---|---|---|---|"]
    for first, runs in summ.items():
        for r in runs:
            lines.append(f"| {first} | {r['seed']} | {r['g_p2_start']:.2f} -> {r['g_p2_end']:.2f} | "
                         f"{r['g_p2_end_p_adjusted']:.3g} | {r['g_verdict_end']} | {r['g_detected_evals']}/{r['evals']} | "
                         f"{r['d_p2_start']:.2f} -> {r['d_p2_end']:.2f} |")
    lines += ["", "Arms (mean ± sd over seeds), ratio of geometric means, and the two-sample tests over seeds "
              "(exact two-sided permutation test of the difference of mean log excess; exact two-sided Mann-Whitney U):", "",
              f"| quantity | D {a} | D {b} | ratio {a}/{b} | permutation p | Mann-Whitney p |", "|---|---|---|---|---|---|"]
    for key, label in GAN_KEYS:
        if key not in tests:
            continue
        t = tests[key]
        lines.append(f"| {label} | {fmt(arms[a][key])} | {fmt(arms[b][key])} | "
                     f"{t['permutation']['ratio_of_geometric_means']:.2f} | {t['permutation']['p_value']:.3g} | "
                     f"{t['mann_whitney']['p_value']:.3g} |")
    lines += ["", f"G outputs with grid detected at the end: {a} {arms[a]['g_grid_detected_end']}/{len(seeds)}, "
              f"{b} {arms[b]['g_grid_detected_end']}/{len(seeds)}.", ""]


def redraw(out: Path) -> int:
    """Redraw from study.json: generators_excess.png, gan_final.png, report.html, and generators.png from the seed-0
    samples recomputed as generator_part draws them (seconds; not when a label would differ from study.json's)."""
    torch.set_num_threads(1)  # robust when the 2 cores are shared
    study = json.loads((out / "study.json").read_text())
    gens, shown, seed = study["generators"], [], study["generators"]["seeds"][0]
    for design in GRID_DESIGNS:
        result, images = measure_generator(design, samples=gens["samples"], seed=seed)
        kept = next(r["metrics"] for r in gens["designs"][design]["runs"] if r["seed"] == seed)
        new, old = [(line_label(m), f"{m['lattice_fraction']:.3f}") for m in (result.metrics.to_dict(), kept)]
        shown = shown + [(result, images)] if shown is not None and new == old else None
        if new != old:
            print(f"{design}: recomputed {new}, study.json {old}: generators.png not redrawn", file=sys.stderr)
    if shown is not None:
        plot_samples(shown, out / "generators.png", title=f"generator samples at initialisation, seed {seed}")
    save_png(excess_figure(gens["designs"], f"generators at initialisation: outputs, lattice period {gens['period']}, "
                                            f"{len(gens['seeds'])} seeds (one dot per seed)"), out / "generators_excess.png")
    gan = study["gan"]
    save_png(gan_final_figure(gan["per_run"], gan["data"]["real_reference"], gan["settings"]["steps"]), out / "gan_final.png")
    write_generator_page(out, gens)
    refresh_manifest(out, "scripts/upsampling_study.py --plots-only")
    print(f"redrew {out}: {'generators.png, ' * (shown is not None)}generators_excess.png, gan_final.png, report.html")
    return 0 if shown is not None else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/upsampling")
    parser.add_argument("--seed", type=int, default=0, help="first seed; parts use seed, seed+1, ...")
    parser.add_argument("--seeds", type=int, default=5, help="seeds for the measurements at init")
    parser.add_argument("--gan-seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-samples", type=int, default=128)
    parser.add_argument("--skip-gan", action="store_true", help="only the measurements at init (quick check)")
    parser.add_argument("--plots-only", action="store_true",
                        help="redraw generators.png (its seed-0 samples recomputed), generators_excess.png and "
                             "gan_final.png, and write report.html, from an existing study.json")
    args = parser.parse_args()
    if args.plots_only:
        return redraw(Path(args.out))
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
        if not args.skip_gan:
            print("gan", file=sys.stderr)
            gan_part(out, study, lines, list(range(args.seed, args.seed + args.gan_seeds)), args.steps,
                     args.eval_every, args.eval_samples)
        study["seconds"] = time.time() - started
        write_json(out / "study.json", study)
        (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} in {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
