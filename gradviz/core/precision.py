"""The arithmetic of the forward and backward passes: float32 (the default), TF32 or bfloat16.

The meter's own arithmetic (FFTs, sums, tests) is float64 whatever is chosen here; only the network's
passes change. ``float32`` is IEEE float32 everywhere, on a GPU too: PyTorch lets cuDNN convolutions use
TF32 by default, and :func:`compute_precision` turns that off while it is active. ``tf32`` allows TF32
in convolutions and matrix products (NVIDIA GPUs from Ampere on). ``bf16`` runs the passes under
``torch.autocast`` in bfloat16 (CPU and GPU); the input gradient comes back in float32.

How much each one moves the report's numbers is measured by ``scripts/precision_study.py``
(``docs/benchmarks.md``); float32 stays the default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from gradviz.errors import GradvizError

__all__ = ["PRECISIONS", "compute_precision", "check_precision"]

# Precision names the command line offers, with what each one means.
PRECISIONS = {
    "float32": "IEEE float32 in every pass (TF32 turned off on GPUs)",
    "tf32": "TF32 in convolutions and matrix products (CUDA GPUs only)",
    "bf16": "bfloat16 autocast in the forward and backward passes",
}


def check_precision(name: str, device: torch.device) -> None:
    """Refuse (one line) an unknown precision, or TF32 on a device other than CUDA.

    Example:
        >>> check_precision("bf16", torch.device("cpu"))
        >>> check_precision("tf32", torch.device("cpu"))
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: precision tf32 needs a CUDA device, not cpu; valid here: float32, bf16
    """
    if name not in PRECISIONS:
        raise GradvizError(f"unknown precision {name!r}; valid: {', '.join(PRECISIONS)}")
    if name == "tf32" and device.type != "cuda":
        raise GradvizError(f"precision tf32 needs a CUDA device, not {device.type}; valid here: float32, bf16")


@contextlib.contextmanager
def _tf32(allowed: bool) -> Iterator[None]:
    """TF32 allowed or not in cuDNN convolutions and CUDA matrix products; the settings are put back after."""
    conv, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (conv.allow_tf32, matmul.allow_tf32)
    conv.allow_tf32, matmul.allow_tf32 = allowed, allowed
    try:
        yield
    finally:
        conv.allow_tf32, matmul.allow_tf32 = before


@contextlib.contextmanager
def compute_precision(name: str, device: torch.device) -> Iterator[None]:
    """The forward and backward passes inside this block run at precision ``name`` on ``device``.

    Args:
        name: a key of :data:`PRECISIONS`.
        device: the model's device.

    Example:
        >>> x = torch.rand(2, 3, requires_grad=True)
        >>> with compute_precision("bf16", torch.device("cpu")):
        ...     y = torch.nn.functional.linear(x, torch.eye(3))
        >>> y.dtype, torch.autograd.grad(y.sum(), x)[0].dtype
        (torch.bfloat16, torch.float32)
    """
    check_precision(name, device)
    with contextlib.ExitStack() as stack:
        if device.type == "cuda":
            stack.enter_context(_tf32(name == "tf32"))
        if name == "bf16":
            stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        yield
