"""The ``gradviz`` command: one sub-command per module in ``gradviz/cli``.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``func``
to a function ``(args) -> int``. Whatever happens, a user sees one line on stderr:

- bad input (a :class:`~gradviz.errors.GradvizError`, a refused argument, a file that cannot be
  read or written, too little memory): ``gradviz CMD: error: ...``, exit code 2;
- Ctrl-C, SIGTERM or SIGHUP: partial outputs are removed, exit code 130, 143 or 129;
- anything unexpected (a bug): one line naming the error and a log file with the full traceback,
  exit code 1.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import re
import signal
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from gradviz import __version__
from gradviz.errors import GradvizError

# Sub-commands in the order ``gradviz --help`` lists them, with their one-line help; each is
# gradviz/cli/<name>.py, imported only when it runs (or its own --help is asked for), so that
# ``gradviz --help`` and ``gradviz --version`` do not import torch.
COMMANDS = {
    "report": "measure the checkerboard energy of a model's input gradients",
    "layers": "list a model's layers, output shapes and cumulative strides",
    "dream": "optimise an image for a channel, neuron, layer (DeepDream) or logit, with jitter and octaves",
    "compare": "downsampling compared on the same weights: max-pool, strided conv, average pool, blur pool",
    "overlap": "uneven overlap of transposed convolutions: pattern, max/min, spectrum, figure",
    "generators": "checkerboards of DCGAN-style generators at random initialisation, per upsampling design",
    "discriminator": "checkerboards in a discriminator's input gradient: stride-2 first layer vs conv+pool",
    "html": "several reports on one self-contained page, layer by layer side by side",
    "fix": "replace a VGG's or ResNet's downsampling (blur pooling, ...) and save it as a state dict",
}

# A value such as "-5,0,5": argparse would take it for an option, so it is joined to its flag.
_NEGATIVE_LIST = re.compile(r"^-(\d|\.\d)[\d.eE+\-]*(,[\s\d.eE+\-]*)*$")


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM or SIGHUP arrives (like KeyboardInterrupt for SIGINT)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``gradviz CMD: error: ... (see --help)``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_in(argv: list[str]) -> str | None:
    """The sub-command ``argv`` names: its first word that is not an option (the top level has no
    option that takes a value)."""
    return next((token for token in argv if not token.startswith("-")), None)


def build_parser(argv: list[str] = ()) -> argparse.ArgumentParser:
    """The ``gradviz`` parser; only the sub-command ``argv`` names is imported and fully built, the
    others are listed by name and help."""
    parser = OneLineParser(prog="gradviz", description="See, measure and remove grid artifacts in CNN gradients.")
    parser.add_argument("--version", action="version", version=f"gradviz {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _command_in(argv)
    for name, summary in COMMANDS.items():
        if name == chosen:
            importlib.import_module(f"gradviz.cli.{name}").register(sub, summary)
        else:
            sub.add_parser(name, help=summary)
    return parser


def join_negative_values(argv: list[str]) -> list[str]:
    """``['--angles', '-5,0,5']`` -> ``['--angles=-5,0,5']`` so that negative lists parse."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_LIST.match(token) and "," in token:
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, so clean-ups run."""

    def handler(signum, frame):
        raise Terminated(signum)

    names = [s for s in ("SIGTERM", "SIGHUP") if hasattr(signal, s)]
    previous = {}
    try:
        for name in names:
            sig = getattr(signal, name)
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave the handlers alone
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _write_log(command: str, exc: BaseException) -> str:
    """Write the full traceback of an unexpected error to a log file; return its path."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"gradviz-{command}-{stamp}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:  # arguments may not be UTF-8
        f.write(f"gradviz {command}: {' '.join(sys.argv)}\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=f)
    return path


def _oneline(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    argv = join_negative_values(list(sys.argv[1:] if argv is None else argv))
    name = "gradviz"
    with signals_as_exceptions():
        try:
            try:
                args = build_parser(argv).parse_args(argv)  # imports the chosen command (and torch)
            except SystemExit as exc:  # --help, or an argument refused (one line already printed)
                return exc.code if isinstance(exc.code, int) else 2
            name = f"gradviz {args.command}"
            return int(args.func(args) or 0)
        except GradvizError as exc:
            print(f"{name}: error: {_oneline(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{name}: interrupted (Ctrl-C); partial outputs removed", file=sys.stderr)
            return 130
        except Terminated as exc:
            print(f"{name}: stopped by {signal.Signals(exc.signum).name}; partial outputs removed", file=sys.stderr)
            return 128 + exc.signum
        except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly, as shell tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except MemoryError:
            print(f"{name}: error: out of memory; try smaller sizes or counts", file=sys.stderr)
            return 2
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            print(f"{name}: error: cannot read or write{where}: {exc.strerror or _oneline(exc)}", file=sys.stderr)
            return 2
        except Exception as exc:
            if any(k in str(exc).lower() for k in ("out of memory", "can't allocate memory")):  # torch.OutOfMemoryError and allocator failures
                print(f"{name}: error: out of memory ({_oneline(exc)[:120]}); try smaller sizes or counts",
                      file=sys.stderr)
                return 2
            log = _write_log(name.replace("gradviz ", "", 1), exc)
            print(f"{name}: internal error ({type(exc).__name__}: {_oneline(exc)[:200]}); "
                  f"full traceback in {log}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
