"""The ``gradviz`` command (:mod:`~gradviz.cli.app`); one module per sub-command."""

from gradviz.cli.app import main

__all__ = ["main"]
