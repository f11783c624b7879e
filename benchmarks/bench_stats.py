"""Time of the calibrated grid tests on a report-sized batch, beside a bare FFT power spectrum.

The issue's target: ``checkerboard_metrics`` with its p-values (999 null draws for the line test
and 999 for the tile test) on a (16, 3, 224, 224) batch at S = 32 in under 2 s on the CPU. The peer
in the same run is the least any spectral meter must do: ``torch.fft.fft2`` of the batch and its
power, summed over images and channels.

    python benchmarks/bench_stats.py [--repeats 5] [--json benchmarks/results/stats_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from gradviz.spectrum import checkerboard_metrics


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--stride", type=int, default=32)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    g = torch.randn(16, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    fft = best_of(lambda: torch.fft.fft2(g.double(), norm="ortho").abs().square().sum((0, 1)), args.repeats)
    full = best_of(lambda: checkerboard_metrics(g, args.stride), args.repeats)
    result = {
        "batch": list(g.shape), "stride": args.stride, "repeats": args.repeats,
        "checkerboard_metrics_s": full, "bare_fft_power_s": fft, "ratio": full / fft,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "machine": platform.machine(), "processor": platform.processor(),
    }
    print(f"checkerboard_metrics (line and tile tests, 999 draws each): {full:.2f} s; bare FFT power: {fft:.3f} s; "
          f"ratio {full / fft:.1f}x (best of {args.repeats}, {torch.get_num_threads()} threads)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
