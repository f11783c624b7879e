"""Which image files an ``--images`` argument names: a folder tree, a list of paths or one file; and a
seeded sample of them.

- A **folder** is read recursively, so an ImageFolder-style dataset (one subfolder per class) is just a
  tree. Its image files are sorted by their path relative to the folder (Python's path order: folder by
  folder) and named by that path, so a class folder is part of each name. Hidden files and folders and
  the metadata files other systems leave are skipped silently, and so are subfolders gradviz wrote (they
  hold its manifest: a report written inside the tree is not read back as images); any other file that is
  not an image (by its suffix) is skipped and counted. Linked folders are followed, each real folder read once.
- A **list** (a ``.txt`` file) names one image path a line; relative paths are relative to the list's
  folder; blank lines and lines starting with ``#`` are skipped. A line naming a missing file is refused.
- Any other **file** is one image.

``max_images`` draws that many files without replacement under a seed, then keeps them in their order.
Nothing here opens an image: only names are listed (:mod:`gradviz.io.images` reads the headers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from gradviz.errors import GradvizError
from gradviz.io.manifest import MANIFEST

__all__ = ["IMAGE_SUFFIXES", "LIST_SUFFIX", "ImageFiles", "folder_tree", "image_list", "resolve", "sample"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# The suffix of a file that lists image paths, one a line.
LIST_SUFFIX = ".txt"
# Files other systems leave in image folders (besides hidden files, which are all skipped).
METADATA_FILES = {"thumbs.db", "desktop.ini", "icon\r"}
VALID = f"an image folder (read recursively), an image file, or a {LIST_SUFFIX} list of image paths"


@dataclass(frozen=True)
class ImageFiles:
    """Image files in their order, with their names and a description for reports.

    Attributes:
        files: the paths, as found.
        names: one name per file: its path relative to the folder, or as the list writes it.
        source: where they came from, with what was skipped or sampled (for reports).
    """

    files: list[Path]
    names: list[str]
    source: str


def is_skipped(path: Path) -> bool:
    """True for hidden files and the metadata files other systems leave (``.DS_Store``, ``Thumbs.db``)."""
    return path.name.startswith(".") or path.name.lower() in METADATA_FILES


def _unreadable(exc: OSError):
    raise GradvizError(f"cannot read image folder {exc.filename}: {exc.strerror}")


def folder_tree(folder: Path) -> tuple[list[Path], int]:
    """The image files under ``folder`` (recursively), sorted by relative path; and how many other
    files (not hidden, not metadata) were skipped.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("b/2.png", "b/1.png", "a.png", "a/9.jpg", "b/notes.md", ".hidden/3.png", "rep/x.png",
        ...              "rep/.gradviz.json"):
        ...     (root / name).parent.mkdir(exist_ok=True)
        ...     (root / name).touch()
        >>> files, skipped = folder_tree(root)
        >>> [f.relative_to(root).as_posix() for f in files], skipped
        (['a/9.jpg', 'a.png', 'b/1.png', 'b/2.png'], 1)
    """
    found, skipped, seen = [], 0, set()
    for root, dirs, names in os.walk(folder, onerror=_unreadable, followlinks=True):
        stat = os.stat(root)
        if (stat.st_dev, stat.st_ino) in seen:  # a link back to a folder already read (a cycle)
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.isfile(os.path.join(root, d, MANIFEST))]
        for name in names:
            path = Path(root, name)
            if is_skipped(path):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append(path)
            else:
                skipped += 1
    return sorted(found, key=lambda p: p.relative_to(folder).parts), skipped


def image_list(path: Path) -> list[tuple[Path, str]]:
    """The ``(file, name)`` pairs a list file names, in its order; one line naming a missing file or a bad line.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "a.png").touch()
        >>> _ = (root / "list.txt").write_text("# my images\\n\\na.png\\n")
        >>> [(f.name, name) for f, name in image_list(root / "list.txt")]
        [('a.png', 'a.png')]
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GradvizError(f"image list {path} is not UTF-8 text; valid: a {LIST_SUFFIX} file of image paths, "
                           "one a line") from None
    except OSError as exc:
        raise GradvizError(f"cannot read image list {path}: {exc.strerror}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        file = Path(entry).expanduser()
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            what = "is not a file" if file.exists() else "not found"
            raise GradvizError(f"image list {path}, line {number}: {entry} {what}; valid: image files, one a line, "
                               "relative paths relative to the list's folder")
        out.append((file, entry))
    if not out:
        raise GradvizError(f"image list {path} names no image; valid: one image path a line (# starts a comment)")
    return out


def sample(n: int, k: int | None, seed: int) -> list[int] | None:
    """Indices of ``k`` of ``n`` items drawn without replacement under ``seed``, in increasing order
    (None when ``k`` is None or not smaller than ``n``: all of them).

    Example:
        >>> sample(10, 4, seed=0) == sample(10, 4, seed=0), len(sample(10, 4, seed=0)), sample(3, 5, seed=0)
        (True, 4, None)
    """
    if k is None or k >= n:
        return None
    if k < 1:
        raise GradvizError(f"max_images={k}; valid: at least 1")
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist())


def resolve(source: str | Path, max_images: int | None = None, seed: int = 0) -> ImageFiles:
    """The image files ``source`` names (a folder tree, a list file or one image file), sampled to
    ``max_images`` under ``seed``; a one-line error for a missing path, an empty folder or list.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for i in range(5):
        ...     (root / f"{i}.png").touch()
        >>> found = resolve(root, max_images=2, seed=0)
        >>> len(found.files), found.names == sorted(found.names), found.source.endswith("images, seed 0)")
        (2, True, True)
    """
    path = Path(source).expanduser()
    notes = []
    if path.is_dir():
        files, skipped = folder_tree(path)
        if not files:
            raise GradvizError(f"image folder {path} holds no images (its subfolders included); valid suffixes: "
                               f"{', '.join(sorted(IMAGE_SUFFIXES))}")
        names = [f.relative_to(path).as_posix() for f in files]
        if skipped:
            notes.append(f"{skipped} non-image file{'s' if skipped > 1 else ''} skipped")
    elif path.is_file() and path.suffix.lower() == LIST_SUFFIX:
        files, names = map(list, zip(*image_list(path)))
    elif path.is_file():
        files, names = [path], [path.name]
    elif path.exists():
        raise GradvizError(f"{path} is neither a folder nor a regular file (a pipe or a device?); valid: {VALID}")
    else:
        raise GradvizError(f"image folder or file not found: {path}; valid: {VALID}")
    picked = sample(len(files), max_images, seed)
    if picked is not None:
        notes.append(f"a sample of {len(picked)} of its {len(files)} images, seed {seed}")
        files, names = [files[i] for i in picked], [names[i] for i in picked]
    return ImageFiles(files, names, str(path) + (f" ({'; '.join(notes)})" if notes else ""))
