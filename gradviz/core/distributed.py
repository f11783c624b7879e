"""Reports over several processes: ``torchrun`` sets the environment, gradviz finds it by itself.

Under ``torchrun --nproc_per_node N`` (one node or several), every process runs the same command.
:func:`from_environment` joins the process group (NCCL on GPUs, gloo on CPUs); each rank measures a
contiguous share of the images (:func:`shard_bounds`: rank 0 the first ones), keeps its own spectra
and tiles, and :func:`gather_accumulators` collects every rank's accumulators and merges them in rank
order, which is the images' order. The sums are float64 and the per-image tiles keep their order, so
the tests' null draws (seeded) see the same data as in one process: the report equals the
single-process one to float rounding, whatever the number of ranks. Only rank 0 writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gradviz.spectrum import SpectrumAccumulator

__all__ = ["Group", "from_environment", "gather_accumulators", "gather_first", "leave", "shard_bounds"]


@dataclass(frozen=True)
class Group:
    """This process's place in a distributed run: its rank, how many ranks, its rank on its node."""

    rank: int
    world_size: int
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes."""
        return self.rank == 0

    def device(self, device: str) -> str:
        """The device this rank uses: ``"auto"`` and ``"cuda"`` become this rank's own GPU when there are GPUs.

        Example:
            >>> Group(1, 2, local_rank=1).device("cpu")
            'cpu'
        """
        if device in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return device


def from_environment() -> Group | None:
    """The distributed group ``torchrun`` launched this process in, joined; None when run on its own.

    The backend is NCCL when CUDA is available, else gloo. A group already initialised (by the caller)
    is used as it is.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), local_rank)


def leave(group: Group | None) -> None:
    """Leave the process group :func:`from_environment` joined (nothing for None)."""
    if group is not None and dist.is_initialized():
        dist.destroy_process_group()


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous share ``[start, stop)`` of ``n`` images that ``rank`` measures (the first ranks take one
    more when ``n`` does not divide evenly).

    Example:
        >>> [shard_bounds(5, r, 2) for r in range(2)], shard_bounds(1, 1, 2)
        ([(0, 3), (3, 5)], (1, 1))
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def gather_accumulators(group: Group, accs: dict[str, SpectrumAccumulator]) -> dict[str, SpectrumAccumulator]:
    """Every rank's accumulators merged in rank order (on every rank), on this rank's device.

    Args:
        group: this process's group.
        accs: this rank's accumulators by layer name (possibly without images).

    Returns:
        ``{name: accumulator of all ranks' images}``.
    """
    device = next((a.power_sum.device for a in accs.values() if a.power_sum is not None), torch.device("cpu"))
    mine = {name: _to_cpu(acc) for name, acc in accs.items()}
    everyone: list = [None] * group.world_size
    dist.all_gather_object(everyone, mine)
    merged = {}
    for name, acc in accs.items():
        whole = SpectrumAccumulator(acc.stride, acc.weighting)
        for part in everyone:
            whole.merge(part[name])
        merged[name] = _to(whole, device)
    return merged


def gather_first(group: Group, value):
    """The first non-None ``value`` in rank order (e.g. the first image's gradient, which rank 0 holds)."""
    everyone: list = [None] * group.world_size
    dist.all_gather_object(everyone, value)
    return next((v for v in everyone if v is not None), None)


def _to_cpu(acc: SpectrumAccumulator) -> SpectrumAccumulator:
    return _to(acc, torch.device("cpu"))


def _to(acc: SpectrumAccumulator, device: torch.device) -> SpectrumAccumulator:
    """A copy of ``acc`` with its tensors on ``device``."""
    out = SpectrumAccumulator(acc.stride, acc.weighting)
    for key, value in acc.__dict__.items():
        if torch.is_tensor(value):
            value = value.to(device)
        elif isinstance(value, list):
            value = [v.to(device) if torch.is_tensor(v) else v for v in value]
        setattr(out, key, value)
    return out
