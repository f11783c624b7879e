"""Argument types for the CLI: each parses one value and refuses what makes no sense.

Each factory returns a function ``str -> value`` for argparse's ``type=``; a refused value
raises ``argparse.ArgumentTypeError`` with what was wrong and what is valid, which the CLI
prints on one line with exit code 2. NaN and infinities are refused everywhere.

>>> int_range(1)("8")
8
>>> float_list(positive=True)("0.9,1,1.1")
(0.9, 1.0, 1.1)
"""

from __future__ import annotations

import argparse
import math

# The largest integer any count or size may be: beyond it, arithmetic in floats overflows long
# before any memory estimate could refuse the run.
MAX_INT = 2**62

# Seeds are used by torch.Generator (64-bit) and numpy (non-negative): 0 .. 2**63 - 1 fits both.
MAX_SEED = 2**63 - 1


def _bounds(lo, hi) -> str:
    if hi is None:
        return f">= {lo}"
    return f"between {lo} and {hi}"


def int_range(lo: int | None = None, hi: int | None = None):
    """An integer in ``[lo, hi]`` (either end open when None)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {_bounds(lo, hi)}, got {text.strip()[:40]}")
        if abs(value) > MAX_INT:
            raise argparse.ArgumentTypeError(f"{text.strip()[:20]}... is too large; valid: integers up to 2**62")
        return value

    return parse


def seed(text: str) -> int:
    """A seed: an integer in ``[0, 2**63 - 1]``."""
    return int_range(0, MAX_SEED)(text)


def _float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def float_range(lo: float | None = None, hi: float | None = None, lo_open: bool = False):
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def parse(text: str) -> float:
        value = _float(text)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise argparse.ArgumentTypeError(f"must be a number {'>' if lo_open else '>='} {lo}"
                                             + (f" and <= {hi}" if hi is not None else "") + f", got {text.strip()}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be a number <= {hi}, got {text.strip()}")
        return value

    return parse


def float_list(positive: bool = False, lo: float | None = None, hi: float | None = None):
    """Comma-separated finite numbers (all > 0 with ``positive``, within ``[lo, hi]``); at least one."""

    def parse(text: str) -> tuple[float, ...]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        values = tuple(_float(p) for p in parts)
        if positive and any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"every value must be > 0, got {text!r}")
        if (lo is not None and min(values) < lo) or (hi is not None and max(values) > hi):
            raise argparse.ArgumentTypeError(f"every value must lie in [{lo}, {hi}], got {text!r}")
        return values

    return parse


def int_list(lo: int = 0):
    """Comma-separated integers ``>= lo``; at least one."""

    def parse(text: str) -> list[int]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected an integer or comma-separated integers, got {text!r}")
        return [int_range(lo)(p) for p in parts]

    return parse


def name_list(text: str) -> list[str]:
    """Comma-separated names; at least one (``,`` alone is refused)."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated names, got {text!r}")
    return names


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether it can run is checked when the model loads)."""
    t = text.strip()
    if t in ("auto", "cpu", "cuda") or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; valid: auto, cpu, cuda, cuda:N")


def nonempty(text: str) -> str:
    """Any non-blank text."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text
