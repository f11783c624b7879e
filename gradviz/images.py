"""Input images: a user's folder or file, or the built-in set (scikit-image's bundled photographs
plus seeded noise), resized and centre-cropped to a square, as RGB in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from gradviz.errors import GradvizError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

# Colour photographs that ship inside scikit-image's wheel (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
# Grey photographs from the same wheel, repeated over the three colour channels.
SKIMAGE_GREY = ("camera", "coins", "grass", "gravel", "brick", "moon")
# Noise images added to the built-in set by default: none, since white-noise images have far larger
# gradients than photographs and would decide pooled numbers (uniform in [0, 1], drawn from the seed).
N_NOISE_IMAGES = 0


@dataclass
class ImageSet:
    """A batch of images (N, 3, size, size) in [0, 1] and where each came from."""

    images: torch.Tensor
    names: list[str]
    source: str
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W), (H, W, 3) or (H, W, 4) uint8/bool/float array -> (3, H, W) float in [0, 1]."""
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
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


def read_image(path: str | Path) -> torch.Tensor:
    """Read one image file as (3, H, W) in [0, 1]; a one-line error if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise GradvizError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return to_tensor(np.asarray(im.convert("RGB")))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise GradvizError(f"cannot read image {path} ({type(exc).__name__}); valid: {', '.join(sorted(IMAGE_SUFFIXES))}") from exc


def load_images(source: str | Path | None, size: int = 224, seed: int = 0, min_size: int = 1,
                noise: int = N_NOISE_IMAGES) -> ImageSet:
    """Images for a report: ``None`` for the built-in set (with ``noise`` noise images), else a folder or a file.

    Images smaller than ``min_size`` (the network's total stride) on either side are refused.
    """
    if size < min_size:
        raise GradvizError(f"image size {size} is smaller than the network's stride {min_size}")
    if source is None:
        return builtin_images(size, seed, noise)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise GradvizError(f"image folder {path} holds no images; valid suffixes: {', '.join(sorted(IMAGE_SUFFIXES))}")
    elif path.exists():
        files = [path]
    else:
        raise GradvizError(f"image folder or file not found: {path}")
    tensors = []
    for f in files:
        img = read_image(f)
        if min(img.shape[-2:]) < min_size:
            raise GradvizError(
                f"image {f} is {img.shape[-2]}x{img.shape[-1]}, smaller than the network's stride {min_size}"
            )
        tensors.append(resize_square(img, size))
    return ImageSet(torch.stack(tensors), [f.name for f in files], str(path))


def builtin_images(size: int = 224, seed: int = 0, noise: int = N_NOISE_IMAGES) -> ImageSet:
    """scikit-image's bundled photographs (colour, then grey) plus ``noise`` seeded uniform-noise images."""
    import skimage.data

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
