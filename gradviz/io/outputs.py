"""Safe, atomic outputs: gradviz never deletes or overwrites anything it did not write.

A folder that gradviz writes carries a manifest, ``.gradviz.json``, listing its files and their
SHA-256. An existing output folder is replaced only when it is empty or when it holds exactly the
files of its manifest with the bytes gradviz wrote (a folder gradviz wrote, untouched since); anything else (a user's folder, a file,
a folder that holds an input) is refused with one line. A single file gradviz writes (a dream
image, an overlap figure and the JSON beside them) carries its own mark (a PNG text chunk, a
JPEG comment, a JSON key), and an existing file is replaced only when it carries that mark.

Everything is built in a uniquely named temporary sibling and renamed into place, under a lock
on the parent folder, with SIGINT/SIGTERM/SIGHUP held back during the rename: a run that is
interrupted or fails leaves nothing behind, and two runs writing the same place both finish
(the last one's output stays). Permissions follow the user's umask.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gradviz.errors import GradvizError
from gradviz.io.manifest import (
    MANIFEST,
    PAGE_HEAD,
    SOFTWARE,
    changed_files,
    manifest_files,
    refresh_manifest,
    write_manifest,
)

__all__ = ["MANIFEST", "SOFTWARE", "atomic_dir", "atomic_file", "atomic_files", "check_out_dir", "check_out_file",
           "hold_signals", "is_gradviz_file", "json_ready", "refresh_manifest", "write_json"]

# Signals held back while a finished output is renamed into place.
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes a plain ``mkdir``/``open`` would have."""
    mask = _umask()
    if root.is_dir():
        for dirpath, _, filenames in os.walk(root):
            os.chmod(dirpath, 0o777 & ~mask)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o666 & ~mask)
    else:
        os.chmod(root, 0o666 & ~mask)


def _entries_under(folder: Path) -> list[str]:
    """Every entry under ``folder``, folders (empty or not) and links included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _resolve(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _check_inputs(out: Path, inputs: Iterable[str | os.PathLike | None], flag: str) -> None:
    """Refuse ``out`` when it is, or holds, an input (links followed on both sides)."""
    real_out = out.resolve()
    for item in inputs:
        if item is None or str(item) == "":
            continue
        inp = _resolve(item)
        real = inp.resolve()
        if inp == out or out in inp.parents or real == real_out or real_out in real.parents:
            what = "is" if inp == out or real == real_out else "contains"
            raise GradvizError(f"{flag} {out} {what} the input {inp}; write the output somewhere else")


def _check_parent(out: Path, flag: str) -> None:
    """The nearest existing ancestor of ``out`` must be a writable folder."""
    parent = out.parent
    while not parent.exists():
        if os.path.lexists(parent):
            raise GradvizError(f"cannot create {flag} {out}: {parent} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise GradvizError(f"cannot create {flag} {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GradvizError(f"cannot write {flag} {out}: folder {parent} is not writable")


def _refuse_foreign(out, foreign: list[str], flag: str) -> None:
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise GradvizError(f"{flag} {out} already holds files gradviz did not write ({shown}); "
                           "give a new or empty folder (gradviz replaces only folders it wrote)")


def check_out_dir(out: str | os.PathLike | None, inputs: Iterable = (), flag: str = "--out") -> Path:
    """Refuse an output folder that gradviz may not write; return its absolute path.

    Valid: a path that does not exist yet (its parents are created), an empty folder, or a
    folder gradviz wrote that holds nothing but its manifest's files. Refused: ``''``, the
    current folder or one above it, a file, a folder holding anything else, and a folder that
    is or contains one of ``inputs``.
    """
    if out is None or str(out).strip() == "":
        raise GradvizError(f"{flag} is empty; give the path of a new folder, e.g. reports/run1")
    path = _resolve(out)
    cwd = Path.cwd().resolve()
    if path.resolve() == cwd or path.resolve() in cwd.parents:
        raise GradvizError(f"{flag} {out} is the current folder or one above it; give the path of a new folder")
    _check_inputs(path, inputs, flag)
    if path.is_symlink():
        raise GradvizError(f"{flag} {out} is a symbolic link; gradviz never replaces a link, give a new folder path")
    if path.exists() and not path.is_dir():
        raise GradvizError(f"{flag} {out} is an existing file; gradviz writes a folder and never replaces a file")
    if path.is_dir():
        listed = manifest_files(path)
        if listed is None:  # not gradviz's: refused unless empty, named without walking the whole tree
            _refuse_foreign(out, sorted(p.name for p in path.iterdir()), flag)
        else:
            parents = {str(p) for f in listed for p in Path(f).parents if str(p) != "."}
            foreign = [f for f in _entries_under(path)
                       if f != MANIFEST and ((f not in listed and f not in parents) or (path / f).is_symlink())]
            _refuse_foreign(out, foreign, flag)
            changed = changed_files(path)
            if changed:
                raise GradvizError(f"{flag} {out} holds files edited since gradviz wrote them "
                                   f"({', '.join(changed[:3])}); give a new or empty folder, or move the edited files away")
    _check_parent(path, flag)
    return path


def is_gradviz_file(path: str | os.PathLike) -> bool:
    """True when ``path`` carries gradviz's mark (PNG text, JPEG comment, JSON key, an HTML page's generator tag, or
    the recipe in a state dict that ``gradviz fix`` wrote)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():  # a link, a FIFO, a device: never ours, and never opened
        return False
    try:
        if path.suffix.lower() in (".html", ".htm"):
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read(len(PAGE_HEAD)) == PAGE_HEAD
        if path.suffix.lower() in (".pth", ".pt"):  # a state dict from `gradviz fix`: its recipe carries the mark
            import torch

            obj = torch.load(path, map_location="cpu", weights_only=True)
            return isinstance(obj, dict) and any(isinstance(v, dict) and str(v.get("software", "")).startswith(SOFTWARE)
                                                 for v in obj.values())
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            return isinstance(data, dict) and str(data.get("software", "")).startswith(SOFTWARE)
        from PIL import Image

        with Image.open(path) as im:
            if path.suffix.lower() == ".png":
                return str(getattr(im, "text", {}).get("Software", "")).startswith(SOFTWARE)
            comment = im.info.get("comment", b"")
            return (comment.decode("latin-1") if isinstance(comment, bytes) else str(comment)).startswith(SOFTWARE)
    except Exception:  # unreadable, not an image, not JSON: not ours
        return False


def check_out_file(out: str | os.PathLike | None, inputs: Iterable = (), flag: str = "--out",
                   suffixes: Iterable[str] | None = None) -> Path:
    """Refuse an output file that gradviz may not write; return its absolute path.

    Valid: a new file in a writable place, or an existing file that gradviz wrote. Refused:
    ``''``, a folder, a file gradviz did not write (a link, a FIFO, a user's file), one of ``inputs``, a wrong
    suffix, a path inside a folder gradviz wrote (it holds a manifest).
    """
    if out is None or str(out).strip() == "":
        raise GradvizError(f"{flag} is empty; give a file path")
    path = _resolve(out)
    if suffixes is not None:
        suffixes = sorted(suffixes)
        if path.suffix.lower() not in suffixes:
            raise GradvizError(f"{flag} must end in {', '.join(suffixes)}, got {str(out)!r}")
    _check_inputs(path, inputs, flag)
    if path.is_symlink():
        raise GradvizError(f"{flag} {out} is a symbolic link; gradviz never replaces a link, give a new file path")
    if path.is_dir():
        raise GradvizError(f"{flag} {out} is a folder; give a file path")
    if path.exists() and not is_gradviz_file(path):
        raise GradvizError(f"{flag} {out} exists and was not written by gradviz; gradviz never replaces it")
    for parent in path.parents:  # a file added to a folder gradviz wrote would make the folder no longer its own
        if (parent / MANIFEST).is_file():
            raise GradvizError(f"{flag} {out} is inside {parent}, a folder gradviz wrote; valid: a path outside it")
    _check_parent(path, flag)
    return path


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones created, deepest first."""
    created = []
    p = folder
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GradvizError(f"cannot create folder {folder}: {exc.strerror}") from exc
    return created


def _remove_empty(folders: list[Path]) -> None:
    for f in folders:
        try:
            f.rmdir()
        except OSError:
            break


@contextmanager
def hold_signals() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP in this thread; they are delivered when the block ends."""
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_SIGNALS)


@contextmanager
def _committing(parent: Path) -> Iterator[None]:
    """Hold the lock on ``parent`` and hold back interrupting signals while an output is renamed in."""
    fd = os.open(parent, os.O_RDONLY)
    try:
        with hold_signals():
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except (ImportError, OSError):  # no flock on this platform or file system: rename alone
                pass
            yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def atomic_dir(out: str | os.PathLike, inputs: Iterable = (), command: str = "", flag: str = "--out") -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``out`` (with a manifest), on error it is removed.

    ``out`` is checked with :func:`check_out_dir` before and again (under the lock) after the
    work; an existing gradviz folder is swapped out and deleted only then.

    Args:
        out: the folder to make: new, empty, or one gradviz wrote with its files unchanged.
        inputs: paths ``out`` may not be or contain (the run's images and weights).
        command: recorded in the manifest.
        flag: how errors name ``out``.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with atomic_dir(root / "run") as tmp:
        ...     _ = (tmp / "a.txt").write_text("1")
        >>> sorted(p.name for p in (root / "run").iterdir())
        ['.gradviz.json', 'a.txt']
        >>> (root / "mine").mkdir(); _ = (root / "mine" / "thesis.tex").write_text("...")
        >>> with atomic_dir(root / "mine") as tmp:
        ...     pass
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: --out .../mine already holds files gradviz did not write (thesis.tex); ...
        >>> shutil.rmtree(root)
    """
    out = check_out_dir(out, inputs, flag)
    created = _make_parents(out.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.gradviz-tmp-", dir=out.parent))
    except OSError as exc:
        _remove_empty(created)
        raise GradvizError(f"cannot write {flag} {out}: {exc.strerror}") from exc
    try:
        try:
            yield tmp
        except OSError as exc:  # a full disk, a quota: name the output, not the temporary file
            raise GradvizError(f"cannot write {flag} {out}: {exc.strerror or exc}") from exc
        write_manifest(tmp, command)
        _apply_umask(tmp)
        with _committing(out.parent):
            check_out_dir(out, inputs, flag)
            if out.is_dir() and any(out.iterdir()):
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.gradviz-old-", dir=out.parent))
                os.replace(out, old / "replaced")
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                if out.is_dir():  # an empty folder of the user's: keep its permissions
                    os.chmod(tmp, stat.S_IMODE(out.stat().st_mode))
                os.replace(tmp, out)  # also replaces an empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    return None


@contextmanager
def atomic_files(paths: Iterable[str | os.PathLike], guard: bool = False, flag: str = "--out") -> Iterator[list[Path]]:
    """Yield temporary paths beside ``paths`` (same suffixes); all are renamed into place together on success.

    With ``guard`` (user-facing outputs, checked first with :func:`check_out_file`), an existing
    file is replaced only if it carries gradviz's mark (see :func:`is_gradviz_file`), checked
    again under the lock just before the renames. On error or interruption no file is left.
    """
    paths = [_resolve(p) for p in paths]
    created: list[Path] = []
    tmps: list[Path] = []
    try:
        for path in paths:
            created += _make_parents(path.parent)
            try:
                fd, name = tempfile.mkstemp(prefix=f".{path.stem}.gradviz-tmp-", suffix=path.suffix, dir=path.parent)
            except OSError as exc:
                raise GradvizError(f"cannot write {flag} {path}: {exc.strerror}") from exc
            os.close(fd)
            tmps.append(Path(name))
        try:
            yield tmps
        except OSError as exc:  # a full disk, a quota: name the output, not the temporary file
            raise GradvizError(f"cannot write {flag} {paths[0]}: {exc.strerror or exc}") from exc
        for tmp in tmps:
            _apply_umask(tmp)
        with _committing(paths[0].parent):
            for path in paths:
                if guard and (path.is_symlink() or (path.exists() and not is_gradviz_file(path))):
                    raise GradvizError(f"{flag} {path} appeared while gradviz was writing and was not "
                                       "written by gradviz; left alone")
            for tmp, path in zip(tmps, paths):
                os.replace(tmp, path)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        _remove_empty(sorted(set(created), key=lambda p: -len(p.parts)))
        raise


@contextmanager
def atomic_file(path: str | os.PathLike, guard: bool = False, flag: str = "--out") -> Iterator[Path]:
    """One file, as :func:`atomic_files`."""
    with atomic_files([path], guard, flag) as (tmp,):
        yield tmp


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


def json_ready(obj, digits: int | None = None):
    """``obj`` with NaN and infinities turned into ``None`` (valid JSON), and floats rounded to
    ``digits`` significant digits when given; dicts, lists and tuples are walked.

    Example:
        >>> json_ready({"a": [1.23456, float("nan")], "b": (float("inf"), 2)}, digits=3)
        {'a': [1.23, None], 'b': [None, 2]}
    """
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}") if digits else obj
    if isinstance(obj, dict):
        return {k: json_ready(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v, digits) for v in obj]
    return obj
