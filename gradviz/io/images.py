"""Input images: a user's folder or file, or the built-in set (scikit-image's bundled photographs
plus seeded noise), resized and centre-cropped to a square, as RGB in [0, 1].

Reading is faithful to the file: 8-, 16- and 32-bit integer images are divided by their type's
maximum (a 16-bit PNG or TIFF keeps its 16 bits), float images must already lie in [0, 1], EXIF
(or TIFF) orientation is applied, palette/CMYK/grey images become RGB and alpha is dropped. Of an
animated image or a multi-page TIFF, the first frame or page is read. Which files a folder (read
recursively), a ``.txt`` list or a sample names: :mod:`gradviz.io.image_paths`. Files are read batch
by batch (:meth:`ImageSet.batches`), so memory does not grow with the number of images.
"""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from gradviz.errors import GradvizError
from gradviz.io.image_paths import IMAGE_SUFFIXES, resolve, sample

# The largest image read, in pixels: Pillow's decompression-bomb limit (about 89 Mpx, 1 GB as float RGB).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

# Colour photographs that ship inside scikit-image's wheel (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
# Grey photographs from the same wheel, repeated over the three colour channels.
SKIMAGE_GREY = ("camera", "coins", "grass", "gravel", "brick", "moon")
# Noise images added to the built-in set by default: none, since white-noise images have far larger
# gradients than photographs and would decide pooled numbers (uniform in [0, 1], drawn from the seed).
N_NOISE_IMAGES = 0


class ImageSet:
    """Square RGB images in [0, 1], held as one tensor, read from files, or streamed from a DataLoader.

    Args:
        images: a (N, 3, S, S) tensor, or None when ``files`` or ``loader`` are given.
        names: one name per image (file-backed: the file names; streamed: none, images go by index).
        source: where the images came from, for reports.
        files: image files, read and resized to ``size`` on demand (see :meth:`batches`).
        size: the square side of file-backed and streamed images.
        loader: an iterable that yields (B, 3, S, S) batches in [0, 1] each time it is iterated
            (:func:`gradviz.io.image_inputs.as_image_set` wraps a DataLoader in one that checks them).
        count: the number of streamed images when known (None: counted while streaming).
        workers: processes that decode file-backed images (0: this one); see :meth:`batches`.

    Shape:
        ``images``: ``(N, 3, S, S)``; each batch ``(B, 3, S, S)``.

    Example:
        >>> images = ImageSet(torch.zeros(5, 3, 8, 8), [f"im{i}" for i in range(5)], "zeros")
        >>> images, [tuple(b.shape) for b in images.batches(2)]
        (ImageSet(5 images, 8 px, source='zeros'), [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)])
    """

    def __init__(self, images: torch.Tensor | None = None, names: list[str] | None = None, source: str = "",
                 extra: dict | None = None, *, files: list[Path] | None = None, size: int | None = None,
                 loader: Iterable | None = None, count: int | None = None, workers: int = 0):
        if sum(x is not None for x in (images, files, loader)) != 1:
            raise ValueError("give one of images, files or loader")
        self._images = images
        self.files = None if files is None else [Path(f) for f in files]
        self.loader = loader
        self.size = int(images.shape[-1]) if images is not None else int(size)
        self.names = list(names) if names is not None else [f.name for f in self.files or []]
        self.count = count if loader is not None else len(self.files) if files is not None else images.shape[0]
        self.source = source
        self.extra = extra or {}
        self.workers = workers

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("the number of streamed images is not known before they are read")
        return self.count

    def __repr__(self) -> str:
        n = "?" if self.count is None else self.count
        source = self.source if len(self.source) <= 60 else self.source[:57] + "..."
        return f"ImageSet({n} images, {self.size} px, source={source!r})"

    def name(self, i: int) -> str:
        """The name of image ``i`` (its index as text when the images have no names)."""
        return self.names[i] if i < len(self.names) and self.names[i] else str(i)

    @property
    def images(self) -> torch.Tensor:
        """All images as one (N, 3, S, S) tensor (file-backed and streamed sets are read in full)."""
        if self._images is None:
            return torch.cat(list(self.batches(64)))
        return self._images

    def shard(self, start: int, stop: int) -> "ImageSet":
        """The images ``[start, stop)`` as a set of their own (a process's share of a distributed run); files
        are still read only when their batch comes.

        Raises:
            ValueError: for a streamed set (a DataLoader cannot be split without reading it).

        Example:
            >>> ImageSet(torch.zeros(5, 3, 8, 8), list("abcde"), "zeros").shard(3, 5).names
            ['d', 'e']
        """
        if self.loader is not None:
            raise ValueError("a streamed set (a DataLoader) cannot be split between processes")
        names = self.names[start:stop]
        if self._images is not None:
            return ImageSet(self._images[start:stop], names, self.source, self.extra)
        return ImageSet(None, names, self.source, self.extra, files=self.files[start:stop], size=self.size,
                        workers=self.workers)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Yield (B, 3, S, S) batches in order; files are decoded and resized batch by batch (by ``workers``
        processes when there are any: shut down after the last batch, on an error, or when the generator is
        closed; a file that cannot be decoded stops it with one line), a DataLoader's batches come as it makes
        them (its own batch size)."""
        if self.loader is not None:
            yield from self.loader
            return
        if self._images is not None:
            for start in range(0, len(self), batch_size):
                yield self._images[start : start + batch_size]
            return
        loader = torch.utils.data.DataLoader(
            _Files(self.files, self.size), batch_size=batch_size, shuffle=False, num_workers=self.workers,
            collate_fn=_collate, worker_init_fn=_worker_init if self.workers else None, persistent_workers=False)
        batches = iter(loader)
        try:
            for batch, errors in batches:
                if any(errors):
                    raise GradvizError(next(e for e in errors if e))
                yield batch
        finally:  # the workers go now, not whenever the iterator is collected
            shutdown = getattr(batches, "_shutdown_workers", None)  # only a multi-process iterator has one
            if shutdown is not None:
                shutdown()


class _Files(torch.utils.data.Dataset):
    """(file ``i`` resized, ""), or (a blank, the one-line error): a worker's exception comes back as a traceback."""

    def __init__(self, files: list[Path], size: int):
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        try:
            return resize_square(read_image(self.files[i]), self.size), ""
        except GradvizError as exc:
            return torch.zeros(3, self.size, self.size), str(exc)


def _collate(items: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    return torch.stack([image for image, _ in items]), [error for _, error in items]


def _worker_init(worker_id: int) -> None:
    """Workers ignore the signals sent to the whole group (Ctrl-C, SIGTERM): the main process handles them and
    closes the loader, which stops the workers (and they exit by themselves if it dies)."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """An image array -> (3, H, W) float32 in [0, 1], converted by its dtype.

    (H, W), (H, W, 1), (H, W, 2) (grey + alpha), (H, W, 3) or (H, W, 4) (alpha dropped). bool
    and unsigned integers are divided by their type's maximum (255, 65535, ...); floats must be
    finite and lie in [0, 1].

    >>> to_tensor(np.array([[0, 65535]], dtype=np.uint16))[:, 0, 1].tolist()
    [1.0, 1.0, 1.0]
    """
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.unsignedinteger):
        work = np.float32 if a.dtype.itemsize <= 2 else np.float64  # float32 is exact for 8 and 16 bits
        a = a.astype(work) / work(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.signedinteger):
        if a.size and a.min() < 0:
            raise GradvizError(f"integer image with negative values (min {a.min()}); valid: unsigned 8/16/32-bit")
        # signed storage of non-negative values (e.g. Pillow's 32-bit mode "I" for 16-bit PNGs)
        a = a.astype(np.float64) / (65535 if a.max(initial=0) <= 65535 else np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise GradvizError("float image holds NaN or infinite values; valid: finite values in [0, 1]")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < -1e-6 or hi > 1 + 1e-6:  # tolerance for values written as 1.0000001 and the like
            raise GradvizError(f"float image values span [{lo:.4g}, {hi:.4g}]; valid: float images in [0, 1]")
    else:
        raise GradvizError(f"image of type {a.dtype}; valid: unsigned integer, bool or float pixels")
    a = a.astype(np.float32)
    if a.ndim == 3 and a.shape[2] in (1, 2):
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise GradvizError(f"image of shape {a.shape}; valid: grey (H, W) or colour (H, W, 3 or 4)")
    a = a[:, :, :3]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).clamp(0, 1)


def resize_square(img: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` (bilinear, antialiased), then centre-crop to a square."""
    _, h, w = img.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    out = F.interpolate(img[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[:, top : top + size, left : left + size].clamp(0, 1)


def _check_pixels(path: Path, height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise GradvizError(f"image {path} is {width}x{height} ({height * width / 1e6:.0f} Mpx), more than the "
                           f"{MAX_PIXELS / 1e6:.0f} Mpx gradviz reads; valid: smaller images (downscale it first)")


def _orient(a: np.ndarray, code: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation code (1-8) to an (H, W[, C]) array."""
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: np.swapaxes(x, 0, 1), 6: lambda x: np.swapaxes(x, 0, 1)[:, ::-1],
           7: lambda x: np.swapaxes(x, 0, 1)[::-1, ::-1], 8: lambda x: np.swapaxes(x, 0, 1)[::-1]}
    return ops[code](a) if code in ops else a


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        shape = page.shape
        planar = len(shape) == 3 and shape[0] in (3, 4) and shape[-1] not in (1, 2, 3, 4)
        h, w = (shape[1], shape[2]) if planar else (shape[0], shape[1])
        _check_pixels(path, h, w)
        if page.photometric == 5:  # separated (CMYK)
            raise GradvizError(f"image {path} is a CMYK TIFF; valid: grey or RGB TIFF (or a CMYK JPEG)")
        a = page.asarray()
        tag = page.tags.get("Orientation")
        code = int(tag.value) if tag is not None else 1
    if planar:
        a = np.moveaxis(a, 0, -1)
    return _orient(a, code)


def _png_is_16bit(path: Path) -> bool:
    """True for a 16-bit PNG (grey, grey + alpha, RGB or RGBA), which Pillow may cut to 8 bits (IHDR: depth)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16


def _read_png16(path: Path) -> np.ndarray:
    import png

    reader = png.Reader(filename=str(path))
    width, height, rows, info = reader.asDirect()
    _check_pixels(path, height, width)
    a = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    with Image.open(path) as im:  # EXIF orientation (an eXIf chunk), read from the header
        code = int(im.getexif().get(0x0112, 1))
    return _orient(a.reshape(height, width, info["planes"]), code)


def _read_pillow(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            _check_pixels(path, im.height, im.width)
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "1", "L", "RGB"):
                return np.asarray(im)
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA")
            return np.asarray(im.convert("RGB"))


def read_array(path: str | Path) -> np.ndarray:
    """One image file as an (H, W[, C]) array in its own dtype and range, orientation applied."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        return _read_tiff(path)
    if path.suffix.lower() == ".png" and _png_is_16bit(path):
        return _read_png16(path)
    return _read_pillow(path)


def read_image(path: str | Path) -> torch.Tensor:
    """Read one image file as (3, H, W) float32 in [0, 1]; a one-line error if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise GradvizError(f"image not found: {path}")
    try:
        return to_tensor(read_array(path))
    except GradvizError as exc:
        text = str(exc)
        raise GradvizError(text if str(path) in text else f"image {path}: {text}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GradvizError(f"image {path} is larger than the {MAX_PIXELS / 1e6:.0f} Mpx gradviz reads "
                           "(a decompression bomb?); valid: smaller images (downscale it first)") from None
    except Exception as exc:  # corrupt, truncated, not an image, unreadable: one line naming the file
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else f"{type(exc).__name__}: {exc}"
        raise GradvizError(f"cannot read image {path} ({' '.join(str(reason).split())[:160]}); valid: "
                           f"{', '.join(sorted(IMAGE_SUFFIXES))} files that open in an image viewer") from None


def image_header(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header, without decoding its pixels; a one-line error if unreadable."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
            h, w = (shape[1], shape[2]) if len(shape) == 3 and shape[0] in (3, 4) and shape[-1] > 4 else shape[:2]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GradvizError(f"image {path} is larger than the {MAX_PIXELS / 1e6:.0f} Mpx gradviz reads "
                           "(a decompression bomb?); valid: smaller images (downscale it first)") from None
    except Exception as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else type(exc).__name__
        raise GradvizError(f"cannot read image {path} ({reason}); valid: {', '.join(sorted(IMAGE_SUFFIXES))} "
                           "files that open in an image viewer") from None
    _check_pixels(path, h, w)
    return int(h), int(w)


def load_images(source: str | Path | None, size: int = 224, seed: int = 0, min_size: int = 1,
                noise: int = N_NOISE_IMAGES, max_images: int | None = None, workers: int = 0) -> ImageSet:
    """Images for a report: ``None`` for the built-in set (with ``noise`` noise images), else a folder
    (read recursively), a ``.txt`` list of image paths or one image file (:func:`gradviz.io.image_paths.resolve`).

    Every chosen file's header is read first (a one-line error naming the first that cannot be read,
    or one smaller than ``min_size``, the network's total stride); pixels are decoded batch by batch
    when the set is used.

    Args:
        source, noise: the folder, list or file; None for the built-in set, plus ``noise`` noise images.
        size, min_size: the square side images are resized and centre-cropped to; the smallest side a file may have.
        seed: seeds the noise images and the sample.
        max_images: keep a sample of this many images, drawn without replacement under ``seed`` and kept
            in their order (None, or more than there are: all).
        workers: processes that decode the files (0: this one).

    Returns:
        An :class:`ImageSet`: files are held as paths, the built-in set as a tensor.
    """
    if size < min_size:
        raise GradvizError(f"image size {size} is smaller than the network's stride {min_size}")
    if workers < 0:
        raise GradvizError(f"workers={workers}; valid: 0 (decode in this process) or more worker processes")
    if source is None:
        held = builtin_images(size, seed, noise)
        picked = sample(len(held), max_images, seed)
        if picked is None:
            return held
        return ImageSet(held.images[picked], [held.names[i] for i in picked],
                        f"{held.source} (a sample of {len(picked)} of them, seed {seed})")
    found = resolve(source, max_images, seed)
    for f in found.files:
        h, w = image_header(f)
        if min(h, w) < min_size:
            raise GradvizError(f"image {f} is {h}x{w}, smaller than the network's stride {min_size}")
    return ImageSet(None, found.names, found.source, files=found.files, size=size, workers=workers)


def builtin_images(size: int = 224, seed: int = 0, noise: int = N_NOISE_IMAGES) -> ImageSet:
    """scikit-image's bundled photographs (colour, then grey) plus ``noise`` seeded uniform-noise images.

    Example:
        >>> images = builtin_images(32, noise=2)
        >>> len(images), images.names[0], images.names[-1], tuple(images.images.shape)
        (14, 'skimage:astronaut', 'noise:1', (14, 3, 32, 32))
    """

    tensors, names = [], []
    for name in SKIMAGE_PHOTOS + SKIMAGE_GREY:
        tensors.append(resize_square(to_tensor(getattr(skimage.data, name)()), size))
        names.append(f"skimage:{name}")
    gen = torch.Generator().manual_seed(seed)
    for i in range(noise):
        tensors.append(torch.rand(3, size, size, generator=gen))
        names.append(f"noise:{i}")
    photos = f"built-in: {len(SKIMAGE_PHOTOS) + len(SKIMAGE_GREY)} scikit-image photographs"
    return ImageSet(torch.stack(tensors), names, photos + (f" + {noise} uniform-noise images (seed {seed})" if noise else ""))
