"""The one exception type a user sees: bad input, reported on one line with exit code 2."""

from __future__ import annotations

from collections.abc import Iterable


class GradvizError(ValueError):
    """A user-facing error: what was wrong and what is valid, in one line."""


def unknown(kind: str, value: object, valid: Iterable[object]) -> GradvizError:
    """``unknown layer 'foo'; valid: a, b, c`` (long lists are shortened)."""
    valid = [str(v) for v in valid]
    shown = ", ".join(valid[:40]) + (f", ... ({len(valid)} in all)" if len(valid) > 40 else "")
    return GradvizError(f"unknown {kind} {value!r}; valid: {shown}")
