"""``gradviz dream``: feature visualisation / DeepDream with jitter and octaves; writes an image and its history."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from gradviz.cli import argtypes, common
from gradviz.core import distributed
from gradviz.core.budget import ACTIVATION_BYTES, activation_elements, check_image_size, check_memory
from gradviz.core.layermap import probe_map
from gradviz.core.models import model_device
from gradviz.core.objectives import OBJECTIVES, make_objective
from gradviz.errors import GradvizError
from gradviz.io.outputs import SOFTWARE, atomic_dir, atomic_files, check_out_dir, check_out_file
from gradviz.optvis.dream import DreamSettings, dream, objective_stride, octave_sizes
from gradviz.optvis.optimizers import OPTIMIZERS
from gradviz.optvis.parameterization import PARAMETERIZATIONS, START_KINDS, start_images
from gradviz.optvis.render import OUTPUT_SUFFIXES, write_image
from gradviz.optvis.sweep import (
    DEFAULT_BATCH,
    SWEEP_OBJECTIVES,
    layer_channels,
    parse_channels,
    resolve_channels,
    sweep,
    sweep_batches,
)
from gradviz.optvis.sweep_render import sweep_summary, write_sweep

# Random scale factors the command line takes: beyond these the scaled image is under a pixel or
# hundreds of times larger than the image.
MIN_SCALE, MAX_SCALE = 0.1, 10.0
# DreamSettings fields a sweep's record leaves out: how it ran (progress bars), not what it computed.
_NOT_RECORDED = ("progress", "track_metrics", "custom_transforms")


def register(subparsers, summary: str) -> None:
    p = subparsers.add_parser(
        "dream",
        help=summary,
        description="DeepDream-style optimisation: normalised gradient ascent (or Adam) on plain pixels (or a "
        "Fourier parameterisation), with roll jitter, pad-and-crop jitter, random scale and rotation, and "
        "octaves. Writes the image (.png/.jpg; a batch side by side) and a JSON history beside it; with --channels, "
        "a folder with one image per channel, a contact sheet, an index page and sweep.json (under torchrun the "
        "channels are shared out across the processes).",
    )
    common.add_model(p)
    p.add_argument("--layer", type=argtypes.nonempty, default=None, help="layer name, e.g. features.22 or layer3.1.conv2 (see `gradviz layers`)")
    p.add_argument("--objective", default="channel", choices=OBJECTIVES,
                   help=f"objective kind (default channel): {OBJECTIVES.help()}")
    p.add_argument("--channel", type=argtypes.int_list(0), default=None, help="channel or class index; a comma list gives one image per index")
    p.add_argument("--channels", type=_channel_spec, default=None, metavar="A:B",
                   help="sweep these channels of --layer, one image each: a range A:B (e.g. 0:64), A:B:S, or a comma "
                        "list 3,7,9; --out is then a folder")
    p.add_argument("--batch-size", type=argtypes.int_range(1, 4096), default=None, metavar="N",
                   help=f"with --channels: channels optimised together in one pass (default {DEFAULT_BATCH}); it fixes "
                        "the batches, so the images do not depend on the number of processes")
    p.add_argument("--image", type=argtypes.nonempty, default=None, help="start from this photograph (default: --start)")
    p.add_argument("--start", default="noise", choices=START_KINDS, help="start image when no --image (default noise)")
    common.add_size(p, note=" (the side of the image optimised)")
    p.add_argument("--steps", type=argtypes.int_range(1, 100_000), default=DreamSettings.steps, help="steps per octave (default: %(default)s)")
    p.add_argument("--optimizer", default="normalized", choices=OPTIMIZERS,
                   help=f"optimiser (default normalized): {OPTIMIZERS.help()}")
    p.add_argument("--lr", type=argtypes.float_range(0, lo_open=True), default=None, help="step size (default: the optimizer's own, see --optimizer)")
    p.add_argument("--param", default="pixel", choices=PARAMETERIZATIONS,
                   help=f"image parameterisation (default pixel): {PARAMETERIZATIONS.help()}")
    p.add_argument("--jitter", type=argtypes.int_range(0), default=0, help="roll jitter range d: offsets in [-d, d] (default 0)")
    p.add_argument("--crop-jitter", type=argtypes.int_range(0), default=0, help="pad-and-crop jitter (Lucid) range (default 0)")
    p.add_argument("--scales", type=argtypes.float_list(positive=True, lo=MIN_SCALE, hi=MAX_SCALE), default=(), help="random scale factors, e.g. 0.9,1,1.1 (default none)")
    p.add_argument("--angles", type=argtypes.float_list(), default=(), help="random rotation angles in degrees, e.g. -5,0,5 (default none)")
    p.add_argument("--octaves", type=argtypes.int_range(1, 20), default=DreamSettings.octaves, help="number of octaves (default: %(default)s)")
    p.add_argument("--octave-scale", type=argtypes.float_range(1, 16, lo_open=True), default=DreamSettings.octave_scale, help="size ratio between octaves (default: %(default)s)")
    p.add_argument("--out", required=True, help="output image (.png, .jpg); the history goes to the same name .json; an existing file is "
                   "replaced only if gradviz wrote it. With --channels: a folder, new, empty or one gradviz wrote")
    common.add_seed(p, "random weights, noise start and transforms")
    common.add_device(p)
    common.add_quiet(p)
    p.set_defaults(func=run)


def _channel_spec(text: str):
    try:
        return text, parse_channels(text)
    except GradvizError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.channels is not None:
        group = distributed.from_environment()  # under torchrun: join the group; every rank renders its share
        try:
            return _run_sweep(args, group)
        finally:
            distributed.leave(group)
    if args.batch_size is not None:
        raise GradvizError("--batch-size sets the batches of a --channels sweep; valid: with --channels, or "
                           "--channel 1,2,3 for one batch")
    inputs = [args.image, args.weights]
    out = check_out_file(args.out, inputs, suffixes=OUTPUT_SUFFIXES)
    check_out_file(out.with_suffix(".json"), inputs, flag="--out's history")
    shown = Path(args.out)
    settings = _settings(args)
    batch = len(args.channel) if args.channel and args.objective in ("channel", "neuron", "logit") else 1
    index = None if args.channel is None else (args.channel[0] if len(args.channel) == 1 else args.channel)
    objective = make_objective(args.objective, args.layer, index)
    model = common.load_model_from(args)
    check_image_size(args.size, model_device(model), batch=batch)
    probe = probe_map(model, args.size)  # one map: the memory estimate, the period, the total stride
    check_memory(batch * activation_elements(probe, args.size) * ACTIVATION_BYTES, model_device(model),
                 f"dreaming {batch} image(s) of {args.size} px", "choose a smaller --size or fewer channels")
    start = start_images(Path(args.image).expanduser() if args.image else args.start, args.size, batch=batch,
                         seed=args.seed)
    result = dream(model, objective, start, settings, probe=probe)
    summary = {"software": SOFTWARE, "model": args.model, "weights": model.weights,
               "start": args.image or args.start, **result.to_dict()}
    text = json.dumps(summary, indent=2, allow_nan=False)
    with atomic_files([out, out.with_suffix(".json")], guard=True) as (image_tmp, json_tmp):
        write_image(result.images, image_tmp)
        json_tmp.write_text(text + "\n")
    metrics = summary["update_metrics"]
    if args.quiet:
        return 0
    print(
        f"wrote {shown} and {shown.with_suffix('.json')}: objective {result.history[0].objective:.4g} -> "
        f"{result.history[-1].objective:.4g}; the update (period {result.stride}): {metrics['verdict']}, "
        f"lattice share {_fixed4(metrics['lattice_fraction'])}"
    )
    if result.stalled:
        print(
            f"warning: the gradient of {objective.name} was zero at every step, so the image did not change "
            "(a channel that never fires after a ReLU?); try the layer before the ReLU, another start or another channel",
            file=sys.stderr,
        )
    return 0


def _run_sweep(args: argparse.Namespace, group: distributed.Group | None) -> int:
    """``--channels``: every check runs on every rank before any work, so that no rank waits for one that failed."""
    text, parts = args.channels
    if args.channel is not None:
        raise GradvizError("--channel and --channels both given; valid: --channel N[,M] for one image or batch, "
                           "--channels A:B for a sweep")
    if args.objective not in SWEEP_OBJECTIVES:
        raise GradvizError(f"--channels sweeps one objective per channel, got --objective {args.objective}; valid: "
                           f"--objective {' or '.join(SWEEP_OBJECTIVES)}")
    if args.layer is None or ":" in args.layer:
        raise GradvizError(f"--channels needs --layer NAME, got {args.layer!r}; valid: a dotted layer name such as "
                           "features.10, without ':n' (see `gradviz layers`)")
    if Path(args.out).suffix.lower() in OUTPUT_SUFFIXES:
        raise GradvizError(f"--out {args.out}: with --channels, --out is a folder; valid: a folder path such as "
                           f"sweeps/{args.layer}")
    inputs = [args.image, args.weights]
    check_out_dir(args.out, inputs)
    settings = _settings(args)
    if group is not None:
        args.device = group.device(args.device)
    start = Path(args.image).expanduser() if args.image else args.start
    start_images(start, args.size)  # an unreadable photograph fails here, on every rank
    model = common.load_model_from(args)
    probe = probe_map(model, args.size)
    channels = resolve_channels(parts, layer_channels(model, probe, args.layer), args.layer)
    batch = args.batch_size or DEFAULT_BATCH
    octave_sizes(args.size, settings.octaves, settings.octave_scale, probe.total_stride)
    objective_stride(model, make_objective(args.objective, args.layer, channels[0]), probe)
    held = min(batch, len(channels))
    check_image_size(args.size, model_device(model), batch=held)
    check_memory(held * activation_elements(probe, args.size) * ACTIVATION_BYTES, model_device(model),
                 f"dreaming {held} image(s) of {args.size} px at once", "choose a smaller --batch-size or --size")
    dreams = sweep(model, args.layer, channels, settings, args.size, start, args.objective, batch, probe, group)
    if group is not None and not group.is_main:
        return 0  # rank 0 writes and prints
    record = {"software": SOFTWARE, "model": args.model, "weights": model.weights, "layer": args.layer,
              "objective": args.objective, "channels_given": text, "start": args.image or args.start,
              "size": args.size, "batch_size": batch,
              "settings": {k: v for k, v in asdict(settings).items() if k not in _NOT_RECORDED},
              "seed_rule": "channel c has seed gradviz.optvis.sweep.channel_seed(seed, c): numpy's "
                           "SeedSequence([seed, c]).generate_state(1, uint64)[0] >> 1"}
    if group is not None:
        n_batches = len(sweep_batches(channels, batch))
        record["distributed"] = {"world_size": group.world_size, "batches_per_rank": [
            hi - lo for lo, hi in (distributed.shard_bounds(n_batches, r, group.world_size) for r in range(group.world_size))]}
    summary = sweep_summary(dreams, record)
    with atomic_dir(args.out, inputs, command="dream") as tmp:
        write_sweep(tmp, dreams, summary)
    if args.quiet:
        return 0
    grids = sum(bool(d.update_metrics.grid_detected) for d in dreams)
    print(f"wrote {Path(args.out) / 'index.html'}: {len(dreams)} channels of {args.layer} in batches of {batch}"
          + (f" over {group.world_size} processes" if group is not None else "")
          + f"; a grid in the update of {grids} of them; contact sheet {Path(args.out) / 'contact.png'}")
    stalled = [d.channel for d in dreams if d.stalled]
    if stalled:
        shown = ", ".join(map(str, stalled[:8])) + (f" and {len(stalled) - 8} more" if len(stalled) > 8 else "")
        print(f"warning: channel(s) {shown} had a zero gradient at every step, so their images did not change (channels "
              "that never fire after a ReLU?); try the layer before the ReLU, or another start", file=sys.stderr)
    return 0


def _settings(args: argparse.Namespace) -> DreamSettings:
    """The optimisation settings the flags give, checked (with the image flags) before any model loads."""
    settings = DreamSettings(
        steps=args.steps, optimizer=args.optimizer, lr=args.lr, jitter=args.jitter, crop_jitter=args.crop_jitter,
        scales=args.scales, angles=args.angles, octaves=args.octaves, octave_scale=args.octave_scale,
        parameterization=args.param, seed=args.seed, progress=not args.quiet,
    )
    settings.check()
    if args.image is not None and not Path(args.image).expanduser().is_file():
        raise GradvizError(f"--image {args.image}: image not found; valid: an image file, or --start noise|grey without --image")
    for flag, value in (("--jitter", args.jitter), ("--crop-jitter", args.crop_jitter)):
        if value > args.size:
            raise GradvizError(f"{flag} must be at most the image size {args.size}, got {value}")
    return settings


def _fixed4(x: float | None) -> str:
    # Four decimals, as this line has always printed them: gradviz.io.text.fmt gives four
    # *significant* digits (0.01728 where this prints 0.0173), so it would change the output.
    return "n/a" if x is None else f"{x:.4f}"
