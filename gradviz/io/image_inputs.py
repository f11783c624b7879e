"""Images as the Python API takes them, turned into one :class:`~gradviz.io.images.ImageSet`.

Accepted: a ``(B, 3, H, W)`` float tensor in [0, 1], an :class:`~gradviz.io.images.ImageSet`, a
list of image paths, a folder (read recursively), a ``.txt`` list of paths or one image file as ``str``
or ``Path``, or a
``torch.utils.data.DataLoader`` yielding such tensors or ``(tensor, label)`` pairs. Files are read
faithfully and resized to ``size`` (:mod:`gradviz.io.images`); a DataLoader is streamed batch by
batch, each batch checked as it comes. Images are square, all of one size. Anything else gets one
line saying what was given and what is valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader

from gradviz.errors import GradvizError
from gradviz.io.image_paths import sample
from gradviz.io.images import ImageSet, image_header, load_images

__all__ = ["DEFAULT_IMAGE_SIZE", "VALID_IMAGES", "as_image_set", "check_batch"]

# The side files are resized to when no size is given (torchvision's ImageNet crop).
DEFAULT_IMAGE_SIZE = 224
# What the API accepts as images, for error messages.
VALID_IMAGES = ("a (B, 3, H, W) float tensor in [0, 1], an ImageSet, a list of image paths, a folder, "
                "or a DataLoader of such tensors or (tensor, label) pairs")
# Values this far outside [0, 1] are taken as rounding, not as another range.
RANGE_TOLERANCE = 1e-6


def check_batch(x: torch.Tensor, what: str = "images", size: int | None = None) -> torch.Tensor:
    """Check one batch of images: 4-D, 3 channels, square (of side ``size`` when given), float in [0, 1].

    Args:
        x: the batch.
        what: how the error names it (``"images"``, ``"DataLoader batch 3"``).
        size: the side every batch must have (None: any square).

    Returns:
        ``x`` unchanged.

    Example:
        >>> check_batch(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
        >>> check_batch(torch.rand(3, 8, 8))
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: images tensor of shape (3, 8, 8); valid: (B, 3, H, W) (one image: x[None])
    """
    shape = tuple(x.shape)
    if x.dim() != 4:
        hint = " (one image: x[None])" if x.dim() == 3 else ""
        raise GradvizError(f"{what} tensor of shape {shape}; valid: (B, 3, H, W){hint}")
    if shape[1] != 3:
        hint = " (channels last? x.permute(0, 3, 1, 2))" if shape[-1] == 3 else " (grey: x.expand(-1, 3, -1, -1))" if shape[1] == 1 else ""
        raise GradvizError(f"{what} tensor of shape {shape}; valid: (B, 3, H, W) with 3 colour channels{hint}")
    if shape[0] == 0:
        raise GradvizError(f"{what} tensor of shape {shape} holds no images; valid: at least one image")
    if shape[2] != shape[3]:
        raise GradvizError(f"{what} of {shape[2]}x{shape[3]} px; valid: square images of one size (centre-crop "
                           "or resize them, e.g. gradviz.io.images.resize_square)")
    if size is not None and shape[2] != size:
        raise GradvizError(f"{what} of {shape[2]} px after images of {size} px; valid: images of one size")
    if not x.is_floating_point():
        raise GradvizError(f"{what} tensor of dtype {x.dtype}; valid: float pixels in [0, 1] (x.float() / 255 for 8-bit)")
    if not bool(torch.isfinite(x).all()):
        raise GradvizError(f"{what} tensor holds NaN or infinite values; valid: finite pixels in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise GradvizError(f"{what} values span [{lo:.3g}, {hi:.3g}]; valid: pixels in [0, 1] (normalisation "
                           "happens inside the model: pass unnormalised images, and normalize= if needed)")
    return x


class _LoaderBatches:
    """A DataLoader's batches, checked; the first, read to learn the size, is not read twice."""

    def __init__(self, loader: DataLoader):
        self.loader = loader
        self._pending = iter(loader)
        try:
            first = next(self._pending)
        except StopIteration:
            raise GradvizError("the DataLoader yields no batches; valid: a DataLoader over at least one image") from None
        self._first = self._tensor(first, 0)
        check_batch(self._first, "DataLoader batch 0")
        self.size = int(self._first.shape[-1])
        self.batch_size = int(self._first.shape[0])  # what the memory check assumes per pass

    @staticmethod
    def _tensor(batch, i: int) -> torch.Tensor:
        if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            batch = batch[0]
        if not isinstance(batch, torch.Tensor):
            raise GradvizError(f"DataLoader batch {i} is a {type(batch).__name__}; valid: (B, 3, H, W) tensors or "
                               "(tensor, label) pairs")
        return batch

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._pending is not None:
            batches, first = self._pending, self._first
            self._pending = self._first = None
            yield first
            start = 1
        else:
            batches, start = iter(self.loader), 0
        for i, batch in enumerate(batches, start):
            yield check_batch(self._tensor(batch, i), f"DataLoader batch {i}", self.size)


def _loader_count(loader: DataLoader) -> int | None:
    """Images a DataLoader yields when its sampler says so (None: counted while streaming)."""
    try:
        n = len(loader.sampler)
    except TypeError:  # an IterableDataset without a length
        return None
    if loader.batch_size is None or not isinstance(loader.batch_sampler, BatchSampler):
        return None
    return n - n % loader.batch_size if loader.drop_last else n


def _files(paths: list, size: int, min_size: int, max_images: int | None, seed: int, workers: int) -> ImageSet:
    if workers < 0:
        raise GradvizError(f"workers={workers}; valid: 0 (decode in this process) or more worker processes")
    files = [Path(p).expanduser() for p in paths]
    picked = sample(len(files), max_images, seed)
    files = files if picked is None else [files[i] for i in picked]
    for f in files:
        if not f.is_file():
            raise GradvizError(f"image not found: {f}; valid: a list of image files")
        h, w = image_header(f)
        if min(h, w) < min_size:
            raise GradvizError(f"image {f} is {h}x{w}, smaller than the network's stride {min_size}")
    parents = {f.parent for f in files}
    source = f"{len(files)} files" + (f" in {parents.pop()}" if len(parents) == 1 else "")
    if picked is not None:
        source += f" (a sample of {len(files)} of {len(paths)}, seed {seed})"
    return ImageSet(files=files, size=size, source=source, workers=workers)


def _described(images) -> str:
    if isinstance(images, np.ndarray):
        return f"a numpy array of shape {images.shape} ({images.dtype}); convert it: torch.from_numpy, channels first"
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], torch.Tensor):
        return f"a {type(images).__name__} of {len(images)} tensors; stack them: torch.stack(images)"
    if isinstance(images, (list, tuple)) and not images:
        return f"an empty {type(images).__name__}"
    return f"a {type(images).__module__}.{type(images).__qualname__}"


def as_image_set(images, size: int | None = None, min_size: int = 1, *, max_images: int | None = None,
                 seed: int = 0, workers: int = 0) -> ImageSet:
    """Any accepted form of images (see the module docstring) as one checked :class:`ImageSet`.

    Args:
        images: a tensor, an ImageSet, a list of paths, a folder or file path, or a DataLoader.
        size: the side files are resized and centre-cropped to (None: 224); tensors, ImageSets and
            DataLoaders keep their own size (``size``, when given, must match it).
        min_size: the smallest side a file may have (the network's total stride).
        max_images, seed: for files, a sample of ``max_images`` drawn under ``seed``, kept in order (None: all).
        workers: for files, processes that decode them (0: this one).

    Returns:
        An :class:`ImageSet`: tensors are held as given, files and DataLoaders read batch by batch.

    Example:
        >>> as_image_set(torch.rand(4, 3, 16, 16))
        ImageSet(4 images, 16 px, source='a tensor')
        >>> loader = DataLoader(torch.utils.data.TensorDataset(torch.rand(5, 3, 8, 8), torch.zeros(5)), batch_size=2)
        >>> images = as_image_set(loader)
        >>> images, [tuple(b.shape) for b in images.batches(8)]
        (ImageSet(5 images, 8 px, source='a DataLoader'), [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)])
        >>> as_image_set(np.zeros((2, 8, 8, 3)))
        Traceback (most recent call last):
        ...
        gradviz.errors.GradvizError: images given as a numpy array of shape (2, 8, 8, 3) (float64); convert it: torch.from_numpy, channels first; valid: a (B, 3, H, W) float tensor in [0, 1], an ImageSet, a list of image paths, a folder, or a DataLoader of such tensors or (tensor, label) pairs
    """
    if isinstance(images, (str, os.PathLike)):
        return load_images(images, size=size or DEFAULT_IMAGE_SIZE, seed=seed, min_size=min_size,
                           max_images=max_images, workers=workers)
    if isinstance(images, (list, tuple)) and images and all(isinstance(p, (str, os.PathLike)) for p in images):
        return _files(list(images), size or DEFAULT_IMAGE_SIZE, min_size, max_images, seed, workers)
    if max_images is not None or workers:
        raise GradvizError(f"max_images= and workers= apply to image files, not to {_described(images)}; valid: "
                           "a folder, a list file or a list of image paths (select from a tensor by indexing)")
    if isinstance(images, torch.Tensor):
        check_batch(images)
        out = ImageSet(images, [""] * images.shape[0], "a tensor")
    elif isinstance(images, ImageSet):
        out = images
    elif isinstance(images, DataLoader):
        batches = _LoaderBatches(images)
        out = ImageSet(loader=batches, size=batches.size, count=_loader_count(images), source="a DataLoader")
    else:
        raise GradvizError(f"images given as {_described(images)}; valid: {VALID_IMAGES}")
    if size is not None and size != out.size:
        raise GradvizError(f"size={size} given for images of {out.size} px; valid: size=None (tensors, ImageSets and "
                           "DataLoaders keep their own size; resize them first)")
    return out
