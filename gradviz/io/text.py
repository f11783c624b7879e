"""Numbers as the pages and tables of every study print them."""

from __future__ import annotations

__all__ = ["fmt"]


def fmt(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits; ``"n/a"`` for None.

    Example:
        >>> fmt(0.123456), fmt(12345.6, 3), fmt(None), fmt(float("nan"))
        ('0.1235', '1.23e+04', 'n/a', 'nan')
    """
    return "n/a" if x is None else f"{x:.{digits}g}"
