"""``gradviz dream``: feature visualisation / DeepDream with jitter and octaves; writes an image and its history."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gradviz.cli import argtypes, common
from gradviz.core.budget import ACTIVATION_BYTES, activation_elements, check_image_size, check_memory
from gradviz.core.layermap import probe_map
from gradviz.core.models import model_device
from gradviz.core.objectives import OBJECTIVES, make_objective
from gradviz.errors import GradvizError
from gradviz.io.outputs import SOFTWARE, atomic_files, check_out_file
from gradviz.optvis.dream import DreamSettings, dream
from gradviz.optvis.optimizers import OPTIMIZERS
from gradviz.optvis.parameterization import PARAMETERIZATIONS, START_KINDS, start_images
from gradviz.optvis.render import OUTPUT_SUFFIXES, write_image

# Random scale factors the command line takes: beyond these the scaled image is under a pixel or
# hundreds of times larger than the image.
MIN_SCALE, MAX_SCALE = 0.1, 10.0


def register(subparsers, summary: str) -> None:
    p = subparsers.add_parser(
        "dream",
        help=summary,
        description="DeepDream-style optimisation: normalised gradient ascent (or Adam) on plain pixels (or a "
        "Fourier parameterisation), with roll jitter, pad-and-crop jitter, random scale and rotation, and "
        "octaves. Writes the image (.png/.jpg; a batch side by side) and a JSON history beside it.",
    )
    common.add_model(p)
    p.add_argument("--layer", type=argtypes.nonempty, default=None, help="layer name, e.g. features.22 or layer3.1.conv2 (see `gradviz layers`)")
    p.add_argument("--objective", default="channel", choices=OBJECTIVES,
                   help=f"objective kind (default channel): {OBJECTIVES.help()}")
    p.add_argument("--channel", type=argtypes.int_list(0), default=None, help="channel or class index; a comma list gives one image per index")
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
                   "replaced only if gradviz wrote it")
    common.add_seed(p, "random weights, noise start and transforms")
    common.add_device(p)
    common.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = [args.image, args.weights]
    out = check_out_file(args.out, inputs, suffixes=OUTPUT_SUFFIXES)
    check_out_file(out.with_suffix(".json"), inputs, flag="--out's history")
    shown = Path(args.out)
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
    index = None if args.channel is None else (args.channel[0] if len(args.channel) == 1 else args.channel)
    objective = make_objective(args.objective, args.layer, index)
    batch = len(args.channel) if args.channel and args.objective in ("channel", "neuron", "logit") else 1
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


def _fixed4(x: float | None) -> str:
    # Four decimals, as this line has always printed them: gradviz.io.text.fmt gives four
    # *significant* digits (0.01728 where this prints 0.0173), so it would change the output.
    return "n/a" if x is None else f"{x:.4f}"
