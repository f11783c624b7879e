"""Channel sweeps: one dream image per channel of a layer, rendered in batches, the same whatever the ranks.

A sweep optimises channels ``c_1, c_2, ...`` of one layer, each image with its own objective
(``channel(layer, c)`` or ``neuron(layer, c)``), several channels per forward pass. What makes a channel's
image depend on nothing but ``(seed, channel)``:

- **Its own random draws.** Channel ``c`` gets the seed :func:`channel_seed` ``(seed, c)``; its noise start
  and every transform draw (jitter offsets, scales, angles) come from generators seeded with it, one per
  image, so they do not depend on the batch the channel lands in.
- **Its own parameters and steps.** Each image is its own parameterisation with its own optimiser state and
  its own ``mean|g|``; only the forward and backward passes are batched (images whose transformed sizes
  differ, under ``scales``, go through in one pass per size).
- **Fixed batches.** Float kernels may round a batch of one image differently from a batch of two (oneDNN
  on the CPU does; some take another path for odd batch sizes), so the batches are fixed by the channel
  list and the batch size alone: ``channels[0:b], channels[b:2b], ...`` (:func:`sweep_batches`). Under
  ``torchrun`` each rank renders a contiguous share of those *batches*
  (:func:`~gradviz.core.distributed.shard_bounds` over the batch list), so every channel is computed in the
  same batch with the same neighbours whatever the number of ranks: the same images, bit for bit, on the
  same hardware and thread count.

Channel ``c`` of a sweep rendered in batches of one is exactly :func:`~gradviz.optvis.dream.dream` run on
that channel alone with ``seed = channel_seed(seed, c)`` (start image and settings alike); in larger batches
it equals it to float rounding. Writing the folder is :mod:`gradviz.optvis.sweep_render`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from gradviz.core.distributed import Group, shard_bounds
from gradviz.core.layermap import LayerMap, probe_map
from gradviz.core.models import model_device
from gradviz.core.objectives import make_objective
from gradviz.core.taps import Taps, check_layers_exist
from gradviz.errors import GradvizError
from gradviz.optvis.dream import DreamSettings, objective_stride, octave_sizes, resize
from gradviz.optvis.optimizers import OPTIMIZERS
from gradviz.optvis.parameterization import make_parameterization, start_images
from gradviz.spectrum import CheckerboardMetrics, checkerboard_metrics

__all__ = ["DEFAULT_BATCH", "SWEEP_OBJECTIVES", "ChannelDream", "channel_seed", "layer_channels", "parse_channels",
           "resolve_channels", "sweep", "sweep_batch", "sweep_batches"]

# Channels per forward pass unless told: 8 images of 224 px through VGG16 up to conv5 hold about 1 GB of
# activations for the backward pass, and 64 channels make 8 batches, one per rank on 8 GPUs.
DEFAULT_BATCH = 8
# The objectives that take one channel index per image.
SWEEP_OBJECTIVES = ("channel", "neuron")
# One part of a channel list: ``N``, or ``A:B`` / ``A:B:S`` with either end left out (Python's slices, no negatives).
_PART = re.compile(r"^(\d+)$|^(\d*):(\d*)(?::(\d+))?$")


@dataclass
class ChannelDream:
    """One channel's dream.

    Attributes:
        channel: the channel index.
        seed: its seed, :func:`channel_seed` ``(seed, channel)``.
        image: the final image, (3, S, S) in [0, 1], on the CPU.
        objective_start: the objective at the first step.
        objective_end: the objective at the last step (before it).
        stalled: the image never moved (a zero gradient at every step).
        update_metrics: checkerboard metrics of the accumulated update ``x_final - x_start``.
    """

    channel: int
    seed: int
    image: torch.Tensor
    objective_start: float
    objective_end: float
    stalled: bool
    update_metrics: CheckerboardMetrics


def channel_seed(seed: int, channel: int) -> int:
    """The seed of one channel of a sweep: a function of ``(seed, channel)`` alone, in ``[0, 2**63)``.

    numpy's ``SeedSequence([seed, channel])`` mixes the pair (no two pairs share a seed as ``seed + channel``
    would); its first 64-bit word, halved to fit the command line's ``--seed``.

    Example:
        >>> channel_seed(0, 3) == channel_seed(0, 3) != channel_seed(1, 3), 0 <= channel_seed(5, 0) < 2**63
        (True, True)
    """
    word = np.random.SeedSequence([seed, channel]).generate_state(1, np.uint64)[0]
    return int(word) >> 1


def parse_channels(text: str) -> list[int | slice]:
    """The parts of a channel list: ``"0:64"``, ``"3,7,9"``, ``":8"``, ``"0:64:4"``, ``"0:4,10"``.

    Args:
        text: comma-separated parts, each an index ``N`` or a range ``A:B`` or ``A:B:S`` (Python's slice,
            either end may be left out; no negative numbers).

    Returns:
        One int or slice per part; :func:`resolve_channels` checks them against a layer.

    Example:
        >>> parse_channels("0:4,9"), parse_channels(":8:2")
        ([slice(0, 4, None), 9], [slice(None, 8, 2)])
        >>> parse_channels("4-9")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: channels '4-9': cannot read '4-9'; valid: A:B (e.g. 0:64), A:B:S, or indices 3,7,9
    """
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise GradvizError(f"channels {text!r} is empty; valid: A:B (e.g. 0:64), A:B:S, or indices 3,7,9")
    out: list[int | slice] = []
    for part in parts:
        m = _PART.match(part)
        if not part or m is None:
            raise GradvizError(f"channels {text!r}: cannot read {part!r}; valid: A:B (e.g. 0:64), A:B:S, or indices 3,7,9")
        if m.group(1) is not None:
            out.append(int(m.group(1)))
            continue
        start, stop, step = (None if g in (None, "") else int(g) for g in m.group(2, 3, 4))
        if step == 0:
            raise GradvizError(f"channels {text!r}: step 0 in {part!r}; valid: a step of 1 or more")
        out.append(slice(start, stop, step))
    return out


def resolve_channels(parts: list[int | slice], n_channels: int, layer: str = "the layer") -> list[int]:
    """The channel indices ``parts`` name in a layer of ``n_channels`` channels, in the order given.

    Unlike a Python slice, a range that reaches past the layer is refused, not cut short.

    Args:
        parts: from :func:`parse_channels`.
        n_channels: the layer's channel count.
        layer: how errors name the layer.

    Returns:
        The indices, each once.

    Raises:
        GradvizError: an index or range end beyond the layer, an empty range, a channel named twice.

    Example:
        >>> resolve_channels(parse_channels("2:5,9"), 16), resolve_channels(parse_channels("12:"), 16)
        ([2, 3, 4, 9], [12, 13, 14, 15])
        >>> resolve_channels(parse_channels("0:64"), 16, "features.3")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: channels 0:64: layer features.3 has 16 channels; valid: indices 0..15, ranges A:B with B <= 16
    """
    valid = f"valid: indices 0..{n_channels - 1}, ranges A:B with B <= {n_channels}"
    chosen: list[int] = []
    for part in parts:
        if isinstance(part, int):
            if part >= n_channels:
                raise GradvizError(f"channel {part}: layer {layer} has {n_channels} channels; {valid}")
            chosen.append(part)
            continue
        shown = f"{'' if part.start is None else part.start}:{'' if part.stop is None else part.stop}" + (
            "" if part.step is None else f":{part.step}")
        start, stop = part.start or 0, n_channels if part.stop is None else part.stop
        if stop > n_channels or start >= n_channels:
            raise GradvizError(f"channels {shown}: layer {layer} has {n_channels} channels; {valid}")
        if start >= stop:
            raise GradvizError(f"channels {shown} is empty; valid: A:B with A < B, e.g. 0:{min(n_channels, 64)}")
        chosen += range(start, stop, part.step or 1)
    seen: set[int] = set()
    for c in chosen:
        if c in seen:
            raise GradvizError(f"channel {c} is named twice; valid: each channel once")
        seen.add(c)
    return chosen


def layer_channels(model: nn.Module, probe: LayerMap, layer: str) -> int:
    """The channel count of ``layer``: the first dimension of its (C, H, W) output.

    Raises:
        GradvizError: an unknown layer, or one without a spatial (C, H, W) output (a flattened vector, a global pool).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2), nn.AdaptiveAvgPool2d(1))
        >>> layer_channels(net, probe_map(net, 32), "0")
        5
    """
    check_layers_exist(model, [layer])
    if layer not in probe or len(probe[layer].shape) != 3:
        shape = probe[layer].shape if layer in probe else "no tensor"
        raise GradvizError(f"layer {layer} has output {shape}, not channels of an image; valid: a layer with a "
                           "(C, H, W) output (see `gradviz layers`)")
    if probe[layer].stride is None:
        raise GradvizError(f"layer {layer} has output {probe[layer].shape}, which does not follow the image size (a "
                           "global pool?); valid: a layer with a spatial (C, H, W) output (see `gradviz layers`)")
    return probe[layer].shape[0]


def sweep_batches(channels: list[int], batch_size: int) -> list[list[int]]:
    """The channels in batches of ``batch_size``, in order (the last may be shorter).

    Example:
        >>> sweep_batches([0, 1, 2, 3, 4], 2)
        [[0, 1], [2, 3], [4]]
    """
    if batch_size < 1:
        raise GradvizError(f"batch size must be >= 1, got {batch_size}")
    return [channels[i : i + batch_size] for i in range(0, len(channels), batch_size)]


def _starts(start: str | Path, size: int, seeds: list[int]) -> torch.Tensor:
    """The start images: noise from each channel's own seed, else the same grey or photograph for all."""
    if str(start) == "noise":
        return torch.cat([start_images("noise", size, batch=1, seed=s) for s in seeds])
    return start_images(start, size, batch=len(seeds))


def sweep_batch(
    model: nn.Module,
    layer: str,
    channels: list[int],
    settings: DreamSettings,
    size: int,
    start: str | Path = "noise",
    objective: str = "channel",
    probe: LayerMap | None = None,
    bar: tqdm | None = None,
) -> list[ChannelDream]:
    """Dream ``channels`` of ``layer`` together, in one forward and backward pass per step (see the module docstring).

    Args:
        model: a frozen model on pixels in [0, 1].
        layer: the layer's dotted name.
        channels: the batch's channels.
        settings: as for :func:`~gradviz.optvis.dream.dream`; ``settings.seed`` is the sweep's seed, from which
            each channel's own is drawn. Per-step metrics are not recorded.
        size: the image side.
        start: ``"noise"`` (each channel's own), ``"grey"`` or a photograph's path.
        objective: ``"channel"`` or ``"neuron"``.
        probe: the model's probe map (default: one :func:`~gradviz.core.layermap.probe_map` pass).
        bar: a progress bar to advance by one per step.

    Returns:
        One :class:`ChannelDream` per channel, in order.

    Example:
        >>> conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        >>> _ = nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(0))
        >>> net = nn.Sequential(conv, nn.MaxPool2d(2)).requires_grad_(False)
        >>> s = DreamSettings(steps=2, jitter=1, progress=False)
        >>> pair = sweep_batch(net, "1", [0, 3], s, 16)
        >>> one = sweep_batch(net, "1", [3], s, 16)[0]
        >>> [d.channel for d in pair], torch.allclose(pair[1].image, one.image, atol=1e-6)
        ([0, 3], True)
    """
    if objective not in SWEEP_OBJECTIVES:
        raise GradvizError(f"a sweep needs an objective with a channel per image, got {objective!r}; valid: "
                           f"{', '.join(SWEEP_OBJECTIVES)}")
    settings.check()
    seeds = [channel_seed(settings.seed, c) for c in channels]
    device = model_device(model)
    start_batch = _starts(start, size, seeds).to(device, torch.float32)
    whole = make_objective(objective, layer, list(channels))
    probe = probe if probe is not None else probe_map(model, size)
    stride = objective_stride(model, whole, probe)
    sizes = octave_sizes(size, settings.octaves, settings.octave_scale, probe.total_stride)
    transform, make_step = settings.transforms(), OPTIMIZERS[settings.optimizer]
    gens = [torch.Generator().manual_seed(s) for s in seeds]  # one per image: draws independent of the batch
    first: list[float] = []
    values = torch.zeros(len(channels))
    detail = torch.zeros_like(resize(start_batch, sizes[0]))
    with Taps(model, whole.layers, stop=True) as taps, torch.enable_grad():
        for size_k in sizes:
            base = resize(start_batch, size_k)
            begin = (base + resize(detail, size_k)).clamp(0, 1)
            params = [make_parameterization(settings.parameterization, begin[i : i + 1]) for i in range(len(channels))]
            steps = [make_step(list(p.parameters()), settings.step_size) for p in params]
            for _ in range(settings.steps):
                views = [transform(p(), g) for p, g in zip(params, gens)]
                total = 0.0
                for shape in dict.fromkeys(tuple(v.shape) for v in views):  # one pass per transformed size
                    idx = [i for i, v in enumerate(views) if tuple(v.shape) == shape]
                    part = make_objective(objective, layer, [channels[i] for i in idx])(
                        taps.forward(torch.cat([views[i] for i in idx])))
                    values[idx] = part.detach().float().cpu()
                    total = total + part.sum()
                grads = torch.autograd.grad(total, [t for p in params for t in p.parameters()])
                with torch.no_grad():
                    at = 0
                    for p, step in zip(params, steps):
                        n = len(list(p.parameters()))
                        step(grads[at : at + n])
                        p.project()
                        at += n
                first = first or values.tolist()
                if bar is not None:
                    bar.update()
            with torch.no_grad():
                last = torch.cat([p().detach() for p in params])
                detail = last - base
    final = last.cpu()
    update = final - start_batch.cpu()
    return [ChannelDream(c, s, final[i].clone(), first[i], float(values[i]), bool((update[i] == 0).all()),
                         checkerboard_metrics(update[i : i + 1], stride))
            for i, (c, s) in enumerate(zip(channels, seeds))]


def sweep(
    model: nn.Module,
    layer: str,
    channels: list[int],
    settings: DreamSettings,
    size: int,
    start: str | Path = "noise",
    objective: str = "channel",
    batch_size: int = DEFAULT_BATCH,
    probe: LayerMap | None = None,
    group: Group | None = None,
) -> list[ChannelDream]:
    """Dream every channel in ``channels``, batch by batch; under ``torchrun``, each rank its share of the batches.

    Args:
        model, layer, settings, size, start, objective, probe: as for :func:`sweep_batch`.
        channels: the channels, in the order the results come back.
        batch_size: channels per forward pass; it fixes the batches (see the module docstring).
        group: the distributed group (from :func:`~gradviz.core.distributed.from_environment`); each rank
            renders a contiguous share of the batches and every rank gets every channel back.

    Returns:
        One :class:`ChannelDream` per channel, in the order of ``channels`` (on every rank).
    """
    batches = sweep_batches(list(channels), batch_size)
    lo, hi = shard_bounds(len(batches), group.rank, group.world_size) if group is not None else (0, len(batches))
    probe = probe if probe is not None else probe_map(model, size)
    quiet = not settings.progress or (group is not None and not group.is_main)
    bar = tqdm(total=settings.steps * settings.octaves * (hi - lo), desc="sweep",
               disable=True if quiet else None, leave=False)
    inner = replace(settings, progress=False, track_metrics=False)
    with bar:
        mine = [d for batch in batches[lo:hi]
                for d in sweep_batch(model, layer, batch, inner, size, start, objective, probe, bar)]
    if group is None:
        return mine
    everyone: list = [None] * group.world_size
    dist.all_gather_object(everyone, mine)  # CPU tensors; rank order is the channels' order
    return [d for part in everyone for d in part]
