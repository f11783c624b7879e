"""Memory estimates made before a run starts, so that an impossible run is refused in one line.

The estimates are deliberately rough (within about a factor of two: they count activations,
their gradients and the spectra, not allocator slack); their job is to refuse a run that asks
for tens of gigabytes on a machine with a few, before anything is allocated.
"""

from __future__ import annotations

import os

import torch

from gradviz.core.layermap import LayerMap
from gradviz.errors import GradvizError

# Share of the available memory a run may plan to use: the rest is left to Python, the OS and
# the allocator's slack.
USABLE_FRACTION = 0.8
# Bytes per activation element kept for a backward pass: the float32 output, its gradient, and
# one temporary of the same size (autograd buffers, ReLU masks).
ACTIVATION_BYTES = 3 * 4
# Bytes per pixel of one gradient map in a spectrum accumulator: float64 sums of the power,
# periodic power and 3-channel gradient (5 x 8 B), plus the batch temporaries (centred copy,
# FFT and periodic FFT, complex128) counted per image in ``report_bytes``.
SPECTRUM_BYTES = 5 * 8
SPECTRUM_TEMP_BYTES = 3 * (8 + 16 + 16)


def format_bytes(n: float) -> str:
    """Bytes in binary units: ``1.5 GB``; beyond terabytes, ``3.2e+09 TB``."""
    n = float(n) if n < 1e300 else 1e300  # an exact integer too large for a float: shown as 1e300
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB" if n < 1e4 else f"{n:.2g} TB"


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Free memory on ``device``: CUDA's free memory, or the system's available RAM (None if unknown)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need: float, device: torch.device | str, what: str, hint: str) -> None:
    """Refuse with one line when ``need`` bytes exceed the usable share of ``device``'s free memory."""
    free = available_bytes(device)
    if free is None:
        return
    limit = USABLE_FRACTION * free
    if need > limit:
        raise GradvizError(f"{what} needs about {format_bytes(need)} of memory, more than the {format_bytes(limit)} usable on "
                           f"{torch.device(device)} ({int(USABLE_FRACTION * 100)}% of {format_bytes(free)} free); {hint}")


def activation_elements(probe: LayerMap, size: int) -> float:
    """Elements of every layer's output for one ``size`` px image: the probe map's count, scaled by area."""
    return probe.activation_elements * (size / probe.size) ** 2


def report_bytes(probe: LayerMap, size: int, batch_size: int, n_layers: int) -> float:
    """Memory a report needs: one batch's forward and backward, and ``n_layers`` spectrum accumulators.

    ``probe``: the model's layer map at :data:`~gradviz.core.layermap.PROBE_SIZE` (cheap, whatever ``size`` is asked for).
    """
    pixels = size * size
    per_image = activation_elements(probe, size) * ACTIVATION_BYTES + 3 * pixels * 4 * 3
    spectra = n_layers * pixels * SPECTRUM_BYTES + batch_size * pixels * SPECTRUM_TEMP_BYTES
    return batch_size * per_image + spectra


def check_image_size(size: int, device: torch.device | str, channels: int = 3, batch: int = 1) -> None:
    """Refuse an image side whose batch alone (float32, with a gradient) would not fit."""
    check_memory(batch * channels * size * size * 4 * 2, device, f"a batch of {batch} images of {size} px",
                 "choose a smaller --size or --batch-size")
