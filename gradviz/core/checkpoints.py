"""Checkpoint files: find the state dict in what ``torch.save`` wrote, and load it into a network.

Accepted: a plain state dict, or one under ``"state_dict"``, ``"model"`` or ``"model_state_dict"``
(also one level further down, as in ``{"model": {"state_dict": ...}}``); ``module.`` (DataParallel)
and ``_orig_mod.`` (``torch.compile``) prefixes are stripped, and a prefix shared by every key that
is not one of the network's own children (``model.`` from Lightning) is tried without. Files are
read with ``weights_only=True``: nothing but tensors and plain containers is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gradviz.core.specs import WEIGHT_CHOICES
from gradviz.errors import GradvizError

__all__ = ["STATE_KEYS", "describe_contents", "find_state_dict", "load_checkpoint", "read_checkpoint"]

STATE_KEYS = ("state_dict", "model", "model_state_dict")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
EXPECTED = ("valid: a state dict of tensors (torch.save(model.state_dict(), path)), or one under "
            + ", ".join(repr(k) for k in STATE_KEYS))


def _is_state_dict(obj: object) -> bool:
    return (isinstance(obj, dict) and len(obj) > 0 and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, torch.Tensor) for v in obj.values()))


def find_state_dict(obj: object) -> dict[str, torch.Tensor] | None:
    """The state dict inside a loaded checkpoint, or None when there is none.

    Args:
        obj: what ``torch.load`` returned.

    Returns:
        ``obj`` itself when it maps names to tensors, else the first state dict under
        :data:`STATE_KEYS`, at the top or one level down; None when there is none.

    Example:
        >>> sd = {"w": torch.zeros(1)}
        >>> find_state_dict({"epoch": 3, "model": {"state_dict": sd}}) is sd, find_state_dict({"epoch": 3})
        (True, None)
    """
    if _is_state_dict(obj):
        return obj  # type: ignore[return-value]
    if not isinstance(obj, dict):
        return None
    inner = [obj[k] for k in STATE_KEYS if k in obj]
    for candidate in inner:
        if _is_state_dict(candidate):
            return candidate
    for candidate in inner:
        if isinstance(candidate, dict):
            for k in STATE_KEYS:
                if _is_state_dict(candidate.get(k)):
                    return candidate[k]
    return None


def describe_contents(obj: object) -> str:
    """What a checkpoint holds, in a few words: ``a dict with keys epoch, optimizer, ...``.

    Example:
        >>> describe_contents({"epoch": 1, "optimizer": {}, "lr": 0.1})
        'a dict with keys epoch, optimizer, lr'
        >>> describe_contents(torch.zeros(2, 3)), describe_contents([1, 2])
        ('a single tensor of shape [2, 3]', 'a list of 2 items')
    """
    if isinstance(obj, dict):
        if not obj:
            return "an empty dict"
        keys = [str(k) for k in obj]
        shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} keys)" if len(keys) > 6 else "")
        return f"a dict with keys {shown}"
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {list(obj.shape)}"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value.float() if value.is_floating_point() else value
    return out


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file, with wrapper prefixes stripped and floats as float32.

    Args:
        path: a file written by ``torch.save``.

    Returns:
        Parameter and buffer names -> tensors.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "ckpt.pth"
        >>> torch.save({"epoch": 9, "state_dict": {"module.fc.weight": torch.ones(2, 2).half()}}, path)
        >>> {k: v.dtype for k, v in read_checkpoint(path).items()}
        {'fc.weight': torch.float32}
    """
    path = Path(path)
    if not path.is_file():
        raise GradvizError(f"weights file not found: {path}; valid: {WEIGHT_CHOICES}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a readable checkpoint"
        if "weights only load failed" in str(exc).lower() or "weights_only" in str(exc):
            raise GradvizError(
                f"weights file {path} holds Python objects besides tensors, which weights_only=True refuses to "
                f"unpickle (a whole model or training state?); {EXPECTED}"
            ) from exc
        raise GradvizError(f"weights file {path} is corrupt or not a torch state dict ({type(exc).__name__})") from exc
    state = find_state_dict(obj)
    if state is None:
        raise GradvizError(f"weights file {path} does not hold a state dict of tensors: found "
                           f"{describe_contents(obj)}; {EXPECTED}")
    return _strip(state)


def _fits(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> bool:
    missing = own.keys() - state.keys()
    return (not state.keys() - own.keys() and all(k.endswith("num_batches_tracked") for k in missing)
            and all(own[k].shape == state[k].shape for k in own.keys() & state.keys()))


def _unprefixed(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor] | None:
    heads = {k.split(".", 1)[0] for k in state}
    if len(heads) != 1 or any("." not in k for k in state):
        return None
    head = heads.pop()
    if head in dict(net.named_children()):
        return None
    return {k.split(".", 1)[1]: v for k, v in state.items()}


def _mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing (e.g. {missing[:2]})")
    if extra:
        parts.append(f"{len(extra)} unexpected keys (e.g. {extra[:2]})")
    if wrong:
        k = wrong[0]
        parts.append(f"shape mismatch at {wrong[:2]} (file {list(state[k].shape)}, model {list(own[k].shape)})")
    detail = "; ".join(parts)
    heads = {state[k].shape[0] for k in wrong if state[k].dim() == own[k].dim() and state[k].dim() >= 1
             and state[k].shape[1:] == own[k].shape[1:]}
    if wrong and len(heads) == 1 and len(wrong) <= 2 and not missing and not extra:
        n = heads.pop()
        detail += f"; a classifier for {n} classes? pass num_classes={n} (--num-classes {n})"
    return detail


def load_checkpoint(net: nn.Module, name: str, path: str | Path,
                    state: dict[str, torch.Tensor] | None = None) -> bool:
    """Load the checkpoint at ``path`` into ``net`` in place.

    A features-only file (the state dict of ``net.features``, as for VGG) is accepted where
    ``net`` has a ``features`` module; the rest of ``net`` then keeps its initialisation.

    Args:
        net: the network, built with the right number of classes.
        name: the network's name, for errors.
        path: a checkpoint file (see :func:`read_checkpoint`).
        state: what :func:`read_checkpoint` returned for ``path``, when already read.

    Returns:
        Whether the file held the whole network (so the classifier is trained), False for a
        features-only file.

    Example:
        >>> import tempfile
        >>> net, path = nn.Sequential(nn.Linear(2, 3)), Path(tempfile.mkdtemp()) / "w.pth"
        >>> torch.save({"model": {"module.0.weight": torch.ones(3, 2), "module.0.bias": torch.zeros(3)}}, path)
        >>> load_checkpoint(net, "mlp", path), net[0].weight.sum().item()
        (True, 6.0)
    """
    path = Path(path)
    state = read_checkpoint(path) if state is None else state
    candidates = [state] + [s for s in [_unprefixed(state, net)] if s is not None]
    features = getattr(net, "features", None)
    targets = [(net, True)] + ([(features, False)] if isinstance(features, nn.Module) else [])
    for candidate in candidates:
        for target, full in targets:
            own = target.state_dict()
            if _fits(own, candidate):
                target.load_state_dict(candidate, strict=False)
                return full
    raise GradvizError(
        f"weights file {path} does not fit {name}: {_mismatch(net.state_dict(), state)}; valid: a full {name} "
        "state dict" + (" or a features-only one" if len(targets) > 1 else "")
    )
