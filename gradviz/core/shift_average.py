"""Shift-averaged attribution: remove the period-``S`` grid from any attribution map.

For an attribution ``A`` (a map shaped like its input: an input gradient, captum's Saliency,
IntegratedGradients, InputXGradient, a NoiseTunnel ...) and a period ``S``,

    A_S(x) = mean_{d in D} unroll(A(roll(x, d)), d),    D = Z_S x Z_S, or a seeded sample of it.

A pattern locked to the network's sampling grid of period ``S`` stays where it is when the image is
rolled; rolled back, it lands on each of its ``S^2`` phases once over ``Z_S x Z_S``, and every
non-zero lattice frequency cancels exactly (for images whose sides are multiples of ``S``), while
what follows the image is rolled and unrolled with it and is kept. A sample of ``N`` shifts leaves
the fraction that the jitter law predicts (:mod:`gradviz.optvis.jitter_law`). SmoothGrad's noise
moves nothing relative to the grid, so it does not remove it. Roll jitter in feature visualisation
(:mod:`gradviz.optvis.transforms`) draws its shifts from the same :func:`roll`.

The shifted copies go through the attribution in batches: ``shifts_per_pass`` shifts of the whole
batch per call, so the cost is ``ceil(|D| / shifts_per_pass)`` batched calls, ``|D|`` times the
work of one attribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from gradviz.errors import GradvizError

__all__ = ["SHIFTS_PER_PASS", "ShiftAverage", "all_shifts", "choose_shifts", "roll", "shift_average", "unroll"]

# Shifted copies of the batch per attribution call (each call holds this many copies of the inputs).
SHIFTS_PER_PASS = 16

Shift = tuple[int, int]


def roll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Circular shift of the last two dims by ``(dy, dx)``: ``y[i, j] = x[i - dy, j - dx]``.

    Args:
        x: any tensor with at least two dims.
        shift: ``(dy, dx)`` in pixels, any sign and size (taken modulo the size).

    Returns:
        The shifted tensor, same shape.

    Example:
        >>> roll(torch.tensor([[0, 1, 2]]), (0, 1)).tolist()
        [[2, 0, 1]]
    """
    return torch.roll(x, shifts=shift, dims=(-2, -1))


def unroll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`roll`: ``unroll(roll(x, s), s) == x`` exactly.

    Args:
        x: any tensor with at least two dims.
        shift: the ``(dy, dx)`` that :func:`roll` was given.

    Returns:
        ``x`` shifted by ``(-dy, -dx)``, same shape.

    Example:
        >>> x = torch.arange(6).view(2, 3)
        >>> torch.equal(unroll(roll(x, (1, -4)), (1, -4)), x)
        True
    """
    return torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(-2, -1))


def all_shifts(period: int) -> list[Shift]:
    """Every shift of ``Z_period x Z_period``, row by row.

    Example:
        >>> all_shifts(2)
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    return [(dy, dx) for dy in range(period) for dx in range(period)]


def choose_shifts(period: int, n_shifts: int | None = None, seed: int = 0) -> list[Shift]:
    """All ``period**2`` shifts (``n_shifts`` None), or ``n_shifts`` of them drawn without replacement under ``seed``.

    Example:
        >>> len(choose_shifts(4)), choose_shifts(4, 3, seed=0) == choose_shifts(4, 3, seed=0)
        (16, True)
        >>> choose_shifts(2, 5)
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: n_shifts=5; valid: 1 to 4 (the shifts of period 2), or None (all)
    """
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise GradvizError(f"period must be a whole number >= 1, got {period!r}")
    shifts = all_shifts(period)
    if n_shifts is None:
        return shifts
    if isinstance(n_shifts, bool) or not isinstance(n_shifts, int) or not 1 <= n_shifts <= len(shifts):
        raise GradvizError(f"n_shifts={n_shifts!r}; valid: 1 to {len(shifts)} (the shifts of period {period}), "
                           "or None (all)")
    order = torch.randperm(len(shifts), generator=torch.Generator().manual_seed(int(seed)))[:n_shifts]
    return [shifts[i] for i in order.tolist()]


def shift_average(
    attribute: Callable[[torch.Tensor, Sequence[Shift]], torch.Tensor],
    inputs: torch.Tensor,
    shifts: Sequence[Shift],
    shifts_per_pass: int = SHIFTS_PER_PASS,
) -> torch.Tensor:
    """``mean_{d in shifts} unroll(A(roll(inputs, d)), d)``, the functional core of :class:`ShiftAverage`.

    Args:
        attribute: ``attribute(batch, chunk)`` -> the attribution of ``batch``, the rolled copies of
            ``inputs`` for the shifts in ``chunk`` stacked along the batch dimension (shift by shift).
        inputs: the images.
        shifts: the shifts ``d`` (see :func:`choose_shifts`).
        shifts_per_pass: shifts per call of ``attribute``.

    Returns:
        The averaged attribution, shaped like ``inputs``.

    Shape:
        inputs ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    Example:
        A map locked to the sampling grid (``A(x) = x + grid``, the grid not moving with ``x``) keeps
        ``x`` and loses the grid's pattern, keeping its mean:

        >>> grid = torch.tensor([[4.0, 0.0], [0.0, 0.0]]).repeat(2, 2)
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> out = shift_average(lambda batch, chunk: batch + grid, x, all_shifts(2))
        >>> torch.equal(out, x + 1.0)
        True
    """
    if inputs.dim() != 4:
        raise GradvizError(f"shift averaging takes a (B, C, H, W) batch, got shape {tuple(inputs.shape)}")
    if not shifts:
        raise GradvizError("no shifts to average over; valid: at least one (dy, dx)")
    if isinstance(shifts_per_pass, bool) or not isinstance(shifts_per_pass, int) or shifts_per_pass < 1:
        raise GradvizError(f"shifts_per_pass must be a whole number >= 1, got {shifts_per_pass!r}")
    b = inputs.shape[0]
    total = None
    for start in range(0, len(shifts), shifts_per_pass):
        chunk = list(shifts[start : start + shifts_per_pass])
        out = attribute(torch.cat([roll(inputs, d) for d in chunk]), chunk)
        if not isinstance(out, torch.Tensor) or out.shape != (b * len(chunk), *inputs.shape[1:]):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise GradvizError(f"the attribution returned {got} for inputs of shape {(b * len(chunk), *inputs.shape[1:])}; "
                               "valid: a map shaped like its input (upsample a layer attribution to the input first)")
        for d, part in zip(chunk, out.detach().split(b)):
            total = unroll(part, d) if total is None else total + unroll(part, d)
    return total / len(shifts)


def _repeat(value, chunk: Sequence[Shift], batch: int, rolled: bool):
    """``value`` for the stacked copies: a per-example tensor (or list) repeated once per shift, an
    image-shaped one (``rolled``: a baseline) rolled with its copy; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] in (batch, 1):
        if rolled and value.dim() == 4:
            return torch.cat([roll(value, d).expand(batch, *value.shape[1:]) for d in chunk])
        if value.shape[0] == batch:
            return value.repeat(len(chunk), *([1] * (value.dim() - 1)))
        return value
    if isinstance(value, list) and len(value) == batch:
        return value * len(chunk)
    if isinstance(value, tuple):
        return tuple(_repeat(v, chunk, batch, rolled) for v in value)
    return value


class ShiftAverage:
    """Average any captum attribution over circular shifts of its input, removing the period-``S`` grid.

    Used like captum's ``NoiseTunnel``: ``ShiftAverage(Saliency(model), period=4).attribute(x, target=3)``.
    Keyword arguments go to the wrapped ``attribute``: ``target`` and ``additional_forward_args``
    that hold one entry per example are repeated for the shifted copies, and an image-shaped
    ``baselines`` tensor is rolled with its copy (a scalar baseline is left as it is).

    Args:
        attribution: a captum attribution object (anything with ``attribute(inputs, **kwargs)``
            returning a map shaped like ``inputs``).
        period: ``S``, the grid's period: the cumulative stride of the layer the map comes from.
        n_shifts: None for all ``S^2`` shifts (the grid cancels exactly); else this many, drawn
            without replacement under ``seed`` (a part of the grid remains: see the jitter law).
        seed: the draw of the shifts.
        shifts_per_pass: shifted copies of the batch per call of the wrapped ``attribute``.

    Shape:
        inputs ``(B, C, H, W)`` -> ``(B, C, H, W)``; ``H`` and ``W`` multiples of ``S`` for the exact
        cancellation.

    Example:
        >>> from captum.attr import Saliency
        >>> conv = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1, padding_mode="circular", bias=False)
        >>> _ = torch.nn.init.ones_(conv.weight)
        >>> net = torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.Linear(16, 1, bias=False))
        >>> _ = torch.nn.init.ones_(net[2].weight)
        >>> x = torch.zeros(1, 1, 8, 8, requires_grad=True)
        >>> Saliency(net).attribute(x, target=0, abs=False).unique().tolist()   # the overlap 4:2:2:1
        [1.0, 2.0, 4.0]
        >>> ShiftAverage(Saliency(net), period=2).attribute(x, target=0, abs=False).unique().tolist()
        [2.25]
    """

    def __init__(self, attribution, period: int, n_shifts: int | None = None, seed: int = 0,
                 shifts_per_pass: int = SHIFTS_PER_PASS):
        if not callable(getattr(attribution, "attribute", None)):
            raise GradvizError(f"{type(attribution).__name__} has no attribute() method; valid: a captum "
                               "attribution object such as Saliency(model)")
        self.attribution = attribution
        self.period = period
        self.shifts = choose_shifts(period, n_shifts, seed)
        self.shifts_per_pass = shifts_per_pass

    def attribute(self, inputs: torch.Tensor, **kwargs) -> torch.Tensor:
        """The wrapped attribution of ``inputs``, averaged over :attr:`shifts` (``kwargs`` as the wrapped one takes)."""
        if kwargs.get("return_convergence_delta"):
            raise GradvizError("return_convergence_delta is not available under shift averaging; valid: leave it off")
        if not isinstance(inputs, torch.Tensor):
            raise GradvizError(f"ShiftAverage takes one (B, C, H, W) tensor, got {type(inputs).__name__}")
        batch = inputs.shape[0]

        def attribute(stacked: torch.Tensor, chunk: Sequence[Shift]) -> torch.Tensor:
            expanded = {k: _repeat(v, chunk, batch, rolled=k == "baselines") for k, v in kwargs.items()}
            return self.attribution.attribute(stacked, **expanded)

        return shift_average(attribute, inputs, self.shifts, self.shifts_per_pass)

    def __repr__(self) -> str:
        return (f"ShiftAverage({type(self.attribution).__name__}, period={self.period}, "
                f"{len(self.shifts)} of {self.period ** 2} shifts)")
