"""Upsampling study: overlap arithmetic, generators at init, discriminator gradients, a GAN over seeds.

    python scripts/upsampling_study.py --out figures/upsampling --seed 0

Writes study.json (every number), summary.md (the tables quoted in docs/upsampling.md) and the
figures overlap.png, generators.png, generators_excess.png, discriminator.png, gan_training.png,
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
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from gradviz.gan import FIRST_LAYERS, PERIOD, GanSettings, measure_discriminator, pick_patches, photo_patches, plot_gradients, plot_training, train_gan
from gradviz.generators import GeneratorResult, measure_generator, plot_samples, sample_images
from gradviz.outputs import atomic_dir, refresh_manifest, write_json
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
    from scipy.stats import mannwhitneyu

    r = mannwhitneyu(a, b, alternative="two-sided", method="exact")
    return {"test": "exact two-sided Mann-Whitney U", "U": float(r.statistic), "p_value": float(r.pvalue)}


def compare(a: list[float], b: list[float]) -> dict:
    return {"permutation": permutation_test(a, b), "mann_whitney": mann_whitney(a, b)}


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
        rows[design] = {"runs": per_seed, **summarise([r["metrics"] for r in per_seed])}
        print(f"  {design:16s} lattice excess {fmt(rows[design]['lattice_excess'])} "
              f"detected {rows[design]['grid_detected']}/{len(seeds)}", file=sys.stderr)
    grid.sort(key=lambda rg: GRID_DESIGNS.index(rg[0].design))
    plot_samples(grid, out / "generators.png", title=f"generator samples at initialisation, seed {seeds[0]}")
    plot_excess({d: r for d, r in rows.items()}, out / "generators_excess.png",
                f"generators at initialisation: outputs, period 8, {len(seeds)} seeds (one dot per seed)")
    study["generators"] = {"seeds": seeds, "samples": samples, "image_size": 32, "period": 8, "designs": rows}
    lines += ["## Generators at initialisation", "",
              f"32x32 RGB outputs, period 8, {samples} latent vectors per seed, seeds {seeds}; mean ± sd over seeds. "
              "Excess = power of the lattice bins over their local background (1 = no grid).", "",
              TABLE_HEAD[0].format("design"), TABLE_HEAD[1]]
    for design, r in rows.items():
        lines.append(table_row(design, r, len(seeds)))
    lines.append("")


def discriminator_part(out, study: dict, lines: list[str], seeds: list[int], n_images: int) -> None:
    rows, shown = {}, {}
    for first in FIRST_LAYERS:
        runs = []
        for seed in seeds:
            images = pick_patches(n_images, seed)
            m, grad = measure_discriminator(first, images, seed=seed)
            runs.append(m.to_dict())
            if seed == seeds[0]:
                shown[first] = grad
        rows[first] = {"runs": runs, **summarise(runs)}
        print(f"  {first:14s} lattice excess {fmt(rows[first]['lattice_excess'])}", file=sys.stderr)
    plot_gradients(shown, out / "discriminator.png")
    study["discriminator"] = {"seeds": seeds, "images": n_images, "period": PERIOD, "first_layers": rows}
    lines += ["## Discriminator input gradients at initialisation", "",
              f"{n_images} photo patches (32x32) per seed (drawn with the seed), period {PERIOD}, seeds {seeds}; "
              "mean ± sd over seeds.", "",
              TABLE_HEAD[0].format("first layer"), TABLE_HEAD[1]]
    for first, r in rows.items():
        lines.append(table_row(first, r, len(seeds)))
    lines.append("")


def plot_excess(rows: dict, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.32 * len(names) + 1.6), sharey=True)
    def period2_significant(run: dict) -> bool:
        m = run.get("metrics", run)
        return m["octave_p_adjusted"][0] < m.get("alpha", 0.05)

    panels = [(axes[0], "lattice_excess", "lattice excess, all periods (no test of its own)", None),
              (axes[1], "period2_excess", "period-2 excess (filled: its Holm-adjusted p < 0.05)", period2_significant)]
    for ax, key, label, significant in panels:
        for i, name in enumerate(names):
            vals = rows[name][key]["values"]
            for v, run in zip(vals, rows[name]["runs"]):
                filled = significant is None or significant(run)
                ax.plot(v, i, "o", ms=4, color="C0", mfc="C0" if filled else "white", alpha=0.8)
            ax.plot(rows[name][key]["mean"], i, "|", ms=12, color="k")
        ax.axvline(1.0, color="grey", ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label + "; 1 = no grid, bar = mean", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


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


def plot_gan_final(summ: dict, real: dict, path, steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("g_p2_end", f"G outputs: period-2 excess at step {steps}", "g_p2_end_p_adjusted"),
              ("g_p2_second_half_geomean", "G outputs: period-2 excess,\ngeometric mean over 2nd half (no test)", None),
              ("d_p2_end", f"D gradient on G outputs:\nperiod-2 excess at step {steps}", "d_p2_end_p_adjusted")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (key, title, p_key) in zip(axes, panels):
        for c, (first, runs) in enumerate(summ.items()):
            vals = [r[key] for r in runs]
            xs = [c + 0.08 * (i - 2) for i in range(len(vals))]
            for x, v, r in zip(xs, vals, runs):
                filled = p_key is not None and r[p_key] < 0.05
                ax.plot([x], [v], "o", ms=6, color=f"C{c}", mfc=f"C{c}" if filled else "white", zorder=3)
            ax.plot([c - 0.25, c + 0.25], [math.exp(statistics.fmean(map(math.log, vals)))] * 2, color="k")
        if key.startswith("g_"):
            m, s = real["period2_excess"]["mean"], real["period2_excess"]["sd"]
            ax.axhspan(m - s, m + s, color="green", alpha=0.15, label="real patches, mean ± sd")
            ax.legend(fontsize=7, loc="lower right")
        ax.axhline(1.0, color="grey", ls=":")
        ax.set_xticks(range(len(summ)), [f"D {f}" for f in summ])
        ax.set_xlim(-0.6, len(summ) - 0.4)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_title(title, fontsize=9)
    fig.suptitle("GAN with a nearest resize-conv generator: one dot per seed (filled: the period-2 line's Holm-adjusted "
                 "p < 0.05), bar = geometric mean, dotted = no grid", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def gan_part(out, study: dict, lines: list[str], seeds: list[int], steps: int, eval_every: int, eval_samples: int) -> None:
    data = photo_patches()
    real_runs = [checkerboard_metrics(pick_patches(eval_samples, 1000 + s), 8).to_dict() for s in seeds]
    real = summarise(real_runs)
    results, finals, summ = {}, [], {}
    partial: dict = {}
    for first in GAN_FIRST_LAYERS:
        results[first], summ[first] = [], []
        for seed in seeds:
            t0 = time.time()
            settings = GanSettings(first_layer=first, generator="nearest", steps=steps, eval_every=eval_every,
                                   eval_samples=eval_samples, seed=seed)
            result, gen = train_gan(settings, data, progress=False)
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
    plot_gan_final(summ, real, out / "gan_final.png", steps)
    grid = []
    for first, gen in finals:
        images = sample_images(gen, 64, seed=123)
        m = checkerboard_metrics(images, 8)
        grid.append((GeneratorResult(f"D {first}, step {steps}", seeds[0], 64, 32, m), images))
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
        "settings": {"generator": "nearest", "first_layers": GAN_FIRST_LAYERS, "seeds": seeds, "steps": steps,
                     "batch": 32, "eval_every": eval_every, "eval_samples": eval_samples, "period": 8,
                     "optimiser": "Adam 2e-4, betas 0.5/0.999, non-saturating loss", "g_width": 64, "d_width": 32},
        "data": {"patches": len(data), "size": 32,
                 "real_reference": {"samples_per_draw": eval_samples, "draw_seeds": [1000 + s for s in seeds], **real,
                                    "runs": real_runs}},
        "per_run": summ, "arms": arms, "tests": {"comparison": f"{a} vs {b}", "primary": "g_p2_end", **tests},
        "runs": {first: [r.to_dict() for r in runs] for first, runs in results.items()},
    }
    lines += [f"## GAN: generator nearest resize-conv, discriminator first layer {a} vs {b}", "",
              f"{len(data)} photo patches (32x32), {steps} steps of batch 32, seeds {seeds}, {eval_samples} generator "
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
    """Redraw the figures that only need study.json (same data, no recomputation)."""
    study = json.loads((out / "study.json").read_text())
    gens = study["generators"]
    plot_excess(gens["designs"], out / "generators_excess.png",
                f"generators at initialisation: outputs, lattice period 8, {len(gens['seeds'])} seeds (one dot per seed)")
    gan = study["gan"]
    plot_gan_final(gan["per_run"], gan["data"]["real_reference"], out / "gan_final.png", gan["settings"]["steps"])
    refresh_manifest(out, "scripts/upsampling_study.py --plots-only")
    print(f"redrew {out}/generators_excess.png and gan_final.png")
    return 0


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
                        help="redraw generators_excess.png and gan_final.png from an existing study.json")
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
