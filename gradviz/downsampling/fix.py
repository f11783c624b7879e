"""A model with its downsampling replaced, saved as a state dict: the fix-it path.

``save_fixed`` applies one of the downsampling variants of :mod:`gradviz.downsampling.variants` (blur
pooling, average pooling, ...) to a loaded VGG or ResNet and writes the new network's state dict with a
recipe: which model, which variant, which weights it came from. ``load_fixed`` rebuilds the same network
from that file. The weights are **not retrained**: every convolution keeps the weights it had, and only
the way the network downsamples changes, so the fixed network computes something else than the one that
was trained (how far its activations move is what ``gradviz compare`` reports as its fairness cosines;
for VGG16 with ImageNet weights, docs/downsampling.md). Fine-tune the fixed network before relying on its
outputs; its input gradients can be measured at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from gradviz.core.checkpoints import find_state_dict
from gradviz.core.models import PixelModel, load_model
from gradviz.core.taps import layer_root
from gradviz.downsampling.variants import build_variant, check_variant
from gradviz.errors import GradvizError
from gradviz.io.manifest import software_mark
from gradviz.io.outputs import atomic_file

__all__ = ["FIX_KEY", "fixed_recipe", "load_fixed", "save_fixed"]

# The key of a fixed model's recipe in its checkpoint file.
FIX_KEY = "gradviz_fix"


def save_fixed(model: PixelModel, variant: str, path: str | os.PathLike) -> nn.Module:
    """Write ``model`` with its downsampling replaced by ``variant`` to ``path`` (atomically, with the user's umask).

    Args:
        model: a :class:`~gradviz.core.models.PixelModel` of a torchvision VGG or ResNet
            (:func:`~gradviz.core.models.load_model`); it is not modified.
        variant: a variant of its family (``blurpool3``, ``avgpool``, ...: ``gradviz compare --help``).
        path: the file to write (checked by the caller: :func:`gradviz.io.outputs.check_out_file`).

    Returns:
        The fixed network (a PixelModel), as :func:`load_fixed` will rebuild it.

    Example:
        >>> import tempfile
        >>> model = load_model("vgg11", "random", seed=0, device="cpu")
        >>> path = Path(tempfile.mkdtemp()) / "fixed.pth"
        >>> fixed = save_fixed(model, "blurpool3", path)
        >>> again = load_fixed(path, device="cpu")
        >>> x = torch.rand(1, 3, 64, 64)
        >>> torch.equal(fixed(x), again(x)), fixed_recipe(path)["downsampling"], again.weights
        (True, 'blurpool3', 'random (seed 0), downsampling blurpool3 (not retrained)')
    """
    check_variant(model, variant)
    fixed = build_variant(model, variant)
    recipe = {"software": software_mark(), "model": getattr(model, "arch", ""), "downsampling": variant,
              "weights": str(getattr(model, "weights", "")), "normalize": getattr(model, "normalize", ""),
              "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist(), "retrained": False,
              "num_classes": _classes(model)}
    state = {k: v.detach().cpu().clone() for k, v in layer_root(fixed).state_dict().items()}
    with atomic_file(path, guard=True) as tmp:
        torch.save({"state_dict": state, FIX_KEY: recipe}, tmp)
    fixed.weights = f"{recipe['weights']}, downsampling {variant} (not retrained)"
    return fixed


def _classes(model: nn.Module) -> int | None:
    """The width of the network's last linear layer: its number of classes (a fine-tuned head keeps its own)."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return heads[-1].out_features if heads else None


def fixed_recipe(path: str | os.PathLike) -> dict | None:
    """The recipe in a file :func:`save_fixed` wrote, or None for any other file (read with ``weights_only=True``)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file, or one holding Python objects: not ours
        return None
    recipe = obj.get(FIX_KEY) if isinstance(obj, dict) else None
    ok = isinstance(recipe, dict) and str(recipe.get("software", "")).startswith("gradviz")
    return recipe if ok and find_state_dict(obj) is not None else None


def load_fixed(path: str | os.PathLike, device: str | torch.device | None = None, seed: int = 0) -> PixelModel:
    """The network :func:`save_fixed` wrote to ``path``: its model rebuilt, the variant applied, the weights loaded.

    Args:
        path: a file written by :func:`save_fixed`.
        device: as in :func:`~gradviz.core.models.load_model`.
        seed: initialises the network before the file's weights replace every parameter.

    Returns:
        A frozen PixelModel in eval mode; ``weights`` says that it is a fixed model, not retrained.
    """
    recipe = fixed_recipe(path)
    if recipe is None:
        raise GradvizError(f"{path} was not written by gradviz fix; valid: a file from `gradviz fix --out`")
    obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    base = load_model(recipe["model"], "random", seed=seed, device=device, num_classes=recipe.get("num_classes"),
                      normalize=(tuple(recipe["mean"]), tuple(recipe["std"])))
    fixed = build_variant(base, check_variant(base, recipe["downsampling"]))
    try:
        layer_root(fixed).load_state_dict(find_state_dict(obj), strict=True)
    except RuntimeError as exc:
        raise GradvizError(f"{path} does not fit {recipe['model']} with {recipe['downsampling']}: "
                           f"{' '.join(str(exc).split())[:200]}") from None
    fixed.weights = f"{recipe['weights']}, downsampling {recipe['downsampling']} (not retrained)"
    return fixed
