"""Reading image files: the header's size checked before decoding, grey or colour, resized and cropped."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

#: PIL modes read as one grey channel (with ``LA`` the alpha is dropped); every other mode is colour (RGB).
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
#: Modes whose alpha channel is dropped on reading (with a warning).
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str | Path, channels: int, resize: int | None = None, crop: int | None = None) -> np.ndarray:
    """One PNG/JPEG file as ``(H, W)`` (``channels=1``, greyscale) or ``(H, W, 3)`` float32 in ``[0, 1]``, its
    shorter side resized to ``resize`` (aspect kept, bicubic on the 8-bit image) and then centre-cropped to
    ``crop`` x ``crop``; an unreadable file, or a crop larger than the image, is a ``ValueError`` naming it."""
    from PIL import Image

    with _open_image(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        if resize is not None:
            width, height = im.size
            scale = resize / min(width, height)
            im = im.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BICUBIC)
        if crop is not None:
            width, height = im.size
            if crop > min(width, height):
                raise ValueError(f"{path}: crop {crop} is larger than the image ({width}x{height} after resize "
                                 f"{resize}); choose crop <= the shorter side")
            left, top = (width - crop) // 2, (height - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
        return np.asarray(im, dtype=np.float32) / 255.0


@contextlib.contextmanager
def _open_image(path: str | Path):
    """An image file opened with PIL after its header's size is checked; an unreadable file (decoding included)
    is a ``ValueError`` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            _check_size(path, im.size)
            yield im
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc


def image_mode(path: Path) -> str:
    """The PIL mode of an image file, from its header (nothing is decoded); a ``ValueError`` naming an
    unreadable file."""
    with _open_image(path) as im:
        return im.mode


#: The largest image the folder dataset decodes (width x height), read from the file's header first.
MAX_IMAGE_PIXELS = 4096 * 4096


def _check_size(path: str | Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"{path}: {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS:,} the folder dataset "
                         "decodes; resize it first")


def infer_channels(files: list[Path]) -> int:
    """1 if every image is grey, 3 if every one is colour; mixed folders are an error naming one of each.
    Dropping an alpha channel is announced once with a warning."""
    import warnings

    grey: Path | None = None
    colour: Path | None = None
    alpha: list[Path] = []
    for path in files:
        mode = image_mode(path)
        if mode in ALPHA_MODES:
            alpha.append(path)
        if mode in GREY_MODES:
            grey = grey or path
        else:
            colour = colour or path
    if grey is not None and colour is not None:
        raise ValueError(f"the folder mixes grey images ({grey}) and colour ones ({colour}); pass the dataset option "
                         "channels (1: read all as grey, 3: read all as RGB)")
    if alpha:
        warnings.warn(f"{len(alpha)} image(s) have an alpha channel (e.g. {alpha[0]}); it is dropped", stacklevel=3)
    return 1 if colour is None else 3
