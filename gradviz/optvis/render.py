"""Writing the optimised images: a batch side by side as one PNG or JPEG, marked as gradviz's.

The mark (a PNG text chunk ``Software`` or a JPEG comment, ``gradviz <version>``) is what lets a
later run replace the file (see :func:`gradviz.io.outputs.is_gradviz_file`). Images are written
with Pillow; nothing here imports matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from gradviz.errors import GradvizError
from gradviz.io.manifest import software_mark
from gradviz.io.outputs import atomic_file

__all__ = ["OUTPUT_SUFFIXES", "save_images", "to_uint8", "write_image"]

# The file types a dream image may be written as (PNG, or JPEG under either suffix). Not
# gradviz.io.images.IMAGE_SUFFIXES, which lists the types gradviz *reads*.
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """A batch in [0, 1] as one uint8 strip, the images side by side.

    Args:
        images: the batch; values outside [0, 1] are clamped.

    Returns:
        ``round(255 * x)`` as uint8, height by width by channel.

    Shape:
        (B, 3, H, W) -> (H, B * W, 3).

    Example:
        >>> strip = to_uint8(torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)]))
        >>> strip.shape, strip[0, :, 0].tolist()
        ((2, 4, 3), [0, 0, 255, 255])
    """
    strip = torch.cat(list(images.detach().clamp(0, 1).cpu()), dim=-1)
    return (strip.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def write_image(images: torch.Tensor, path: str | Path) -> None:
    """Write the batch side by side (:func:`to_uint8`) as one image at ``path``, marked as gradviz's.

    Not atomic: :func:`save_images` (or :func:`gradviz.io.outputs.atomic_files`) gives the path of a
    temporary file to write with it.

    Args:
        images: (B, 3, H, W) in [0, 1].
        path: a ``.png`` path gets a PNG with a ``Software`` text chunk; any other a JPEG with a comment.

    Example:
        >>> import tempfile
        >>> from gradviz.io.outputs import is_gradviz_file
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_image(torch.zeros(2, 3, 4, 4), Path(folder) / "x.png")
        ...     with Image.open(Path(folder) / "x.png") as im:
        ...         im.size, is_gradviz_file(Path(folder) / "x.png")
        ((8, 4), True)
    """
    path = Path(path)
    mark = software_mark()
    image = Image.fromarray(to_uint8(images))
    if path.suffix.lower() == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", mark)
        image.save(path, format="PNG", pnginfo=info)
    else:
        image.save(path, format="JPEG", comment=mark.encode())


def save_images(images: torch.Tensor, path: str | Path, guard: bool = False) -> None:
    """Write the batch side by side as one PNG or JPEG, atomically (see :func:`write_image`).

    Args:
        images: (B, 3, H, W) in [0, 1].
        path: ends in one of :data:`OUTPUT_SUFFIXES` (else a GradvizError, and nothing is written).
        guard: replace an existing file only if gradviz wrote it (see :func:`gradviz.io.outputs.atomic_file`).

    Example:
        >>> save_images(torch.zeros(1, 3, 4, 4), "x.gif")
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: image output must end in .png, .jpg, .jpeg, got 'x.gif'
    """
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise GradvizError(f"image output must end in {', '.join(OUTPUT_SUFFIXES)}, got {path.name!r}")
    with atomic_file(path, guard=guard) as tmp:
        write_image(images, tmp)
