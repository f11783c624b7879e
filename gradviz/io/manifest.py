"""The manifest of a folder gradviz wrote: ``.gradviz.json``, listing each file and its SHA-256.

A folder is gradviz's to replace only when its manifest is valid and every file it lists still has
the bytes gradviz wrote (see :func:`gradviz.io.outputs.check_out_dir`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import gradviz
from gradviz.errors import GradvizError

MANIFEST = ".gradviz.json"
# The mark a single file carries: PNG text chunk "Software", JPEG comment, JSON key "software".
SOFTWARE = "gradviz"
# How every page gradviz writes begins (templates/base.html.j2): a page is gradviz's only when it starts so,
# with the version after it; a tag elsewhere (in a comment, in a user's page) does not count.
PAGE_HEAD = f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="generator" content="{SOFTWARE} '


def software_mark() -> str:
    """The text a single file gradviz writes carries (a PNG ``Software`` chunk, a JPEG comment).

    Example:
        >>> software_mark() == f"gradviz {gradviz.__version__}"
        True
    """
    return f"{SOFTWARE} {gradviz.__version__}"


def files_under(folder: Path) -> list[str]:
    """Every entry under ``folder`` except real folders: files, links (to anything) and the like."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink() or not p.is_dir())


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict | None:
    """``folder``'s manifest, or None when it has no valid gradviz manifest."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("software") != SOFTWARE or not isinstance(data.get("files"), list):
        return None
    return data


def manifest_files(folder: Path) -> list[str] | None:
    """The files listed in ``folder``'s manifest, or None when it has no valid gradviz manifest."""
    data = read_manifest(folder)
    return None if data is None else [str(f) for f in data["files"]]


def changed_files(folder: Path) -> list[str]:
    """Files of the manifest whose bytes differ from what gradviz wrote (an edit of the user's)."""
    data = read_manifest(folder) or {}
    hashes = data.get("sha256", {}) if isinstance(data.get("sha256"), dict) else {}
    return [name for name, digest in sorted(hashes.items())
            if (folder / name).is_file() and not (folder / name).is_symlink() and sha256(folder / name) != digest]


def write_manifest(folder: Path, command: str) -> None:
    """Write ``folder``'s manifest: every file under it (links included) with its SHA-256, and ``command``."""
    files = [f for f in files_under(folder) if f != MANIFEST]
    data = {"software": SOFTWARE, "version": gradviz.__version__, "command": command, "files": files,
            "sha256": {f: sha256(folder / f) for f in files}}
    (folder / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")


def refresh_manifest(folder: str | os.PathLike, command: str = "") -> None:
    """Record again the files of a folder gradviz wrote, after gradviz itself redrew some of them
    (a study's redraw mode); refused for a folder without a gradviz manifest."""
    folder = Path(folder)
    if read_manifest(folder) is None:
        raise GradvizError(f"{folder} has no gradviz manifest; only folders gradviz wrote can be refreshed")
    write_manifest(folder, command)
