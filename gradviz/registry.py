"""Name -> callable registries: the one place where a name the command line accepts meets its code.

Each entry is a callable with a docstring; its first line is the description that ``--help`` and
the error for an unknown name show. The command line takes its choices from a registry, so the
choices and the code cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from gradviz.errors import unknown

F = TypeVar("F", bound=Callable)

__all__ = ["Registry"]


class Registry(Mapping[str, F], Generic[F]):
    """An ordered mapping from names to documented callables.

    Args:
        kind: what the entries are, for error messages ("gradient source", "variant").

    Example:
        >>> shapes = Registry("shape")
        >>> @shapes.register("square")
        ... def square(n):
        ...     '''n x n, every side equal.'''
        ...     return (n, n)
        >>> shapes["square"](3), shapes.describe("square"), list(shapes), "circle" in shapes
        ((3, 3), 'n x n, every side equal.', ['square'], False)
        >>> shapes["circle"]
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: unknown shape 'circle'; valid: square
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, F] = {}

    def register(self, name: str, fn: F | None = None, *, doc: str | None = None):
        """Add ``fn`` under ``name`` (usable as a decorator); ``doc`` replaces a missing docstring."""

        def add(f: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if doc is not None:
                f.__doc__ = doc
            if not (f.__doc__ or "").strip():
                raise ValueError(f"{self.kind} {name!r} needs a docstring (its description)")
            self._entries[name] = f
            return f

        return add if fn is None else add(fn)

    def __getitem__(self, name: str) -> F:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise unknown(self.kind, name, self._entries) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self, name: str) -> str:
        """The first line of the entry's docstring."""
        return (self[name].__doc__ or "").strip().splitlines()[0].strip()

    def help(self) -> str:
        """``name: description; ...`` for ``--help``."""
        return "; ".join(f"{name}: {self.describe(name)}" for name in self)
