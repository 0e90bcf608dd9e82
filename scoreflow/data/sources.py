"""Built-in datasets: scikit-learn digits, MNIST, Fashion-MNIST, image folders and 2-D toys."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch

from scoreflow.data.base import EIGHT_BIT_LEVELS, TensorData, check_split, check_test_fraction
from scoreflow.data.idx import fetch, load_idx_images
from scoreflow.data.images import (ALPHA_MODES, GREY_MODES, MAX_IMAGE_PIXELS, image_mode, infer_channels,  # noqa: F401
                                   read_image)
from scoreflow.data.streamed import ImageFiles
from scoreflow.validators import check_request

DEFAULT_DATA_DIR = Path(os.environ.get("SCOREFLOW_DATA_DIR", Path.home() / ".cache" / "scoreflow" / "data"))

_MNIST_FILES = {
    "mnist": {
        "train": (("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                  ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c")),
        "test": (("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                 ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")),
    },
    "fashion_mnist": {
        "train": (("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
                  ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845")),
        "test": (("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
                 ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")),
    },
}
_MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist", "https://storage.googleapis.com/cvdf-datasets/mnist"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
}


#: scikit-learn's digits hold the grey levels 0..16.
DIGITS_LEVELS = 17


@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def digits(split: str = "train", *, data_dir: str | Path | None = None, test_fraction: float = 0.2,
           seed: int = 0) -> TensorData:
    """scikit-learn's 1797 8x8 handwritten digits (shipped in the package; no download).

    Pixels 0..16 are scaled to ``[0, 1]`` (17 quantization levels); a fixed seeded permutation holds out
    ``test_fraction`` of the images as the test split. ``data_dir`` is not used.
    """
    check_split(split)
    check_test_fraction(test_fraction)
    images, target = _sklearn_digits()
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(target.astype(np.int64))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(x) * test_fraction))
    idx = order[n_test:] if split == "train" else order[:n_test]
    return TensorData(x[idx], y[idx], "image", "digits", levels=DIGITS_LEVELS)


def _idx_dataset(name: str, split: str, data_dir: str | Path | None) -> TensorData:
    check_split(split)
    folder = Path(data_dir) if data_dir else DEFAULT_DATA_DIR / name
    (img_name, img_sum), (lab_name, lab_sum) = _MNIST_FILES[name][split]
    images = fetch(img_name, img_sum, folder, _MIRRORS[name])
    labels = fetch(lab_name, lab_sum, folder, _MIRRORS[name])
    x, y = load_idx_images(images, labels)
    return TensorData(x, y, "image", name, levels=EIGHT_BIT_LEVELS)


def mnist(split: str = "train", *, data_dir: str | Path | None = None) -> TensorData:
    """MNIST from the official IDX gzip files in ``data_dir`` (downloaded, checksum-verified, if absent)."""
    return _idx_dataset("mnist", split, data_dir)


def fashion_mnist(split: str = "train", *, data_dir: str | Path | None = None) -> TensorData:
    """Fashion-MNIST from the official IDX gzip files in ``data_dir`` (downloaded if absent)."""
    return _idx_dataset("fashion_mnist", split, data_dir)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _optional_size(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of pixels or left out, got {value!r}")
    return value


def folder(split: str = "train", *, data_dir: str | Path | None = None, channels: int | None = None,
           test_fraction: float = 0.1, seed: int = 0, resize: int | None = None, crop: int | None = None,
           flip: bool = False, stream: bool = False, workers: int = 0) -> TensorData | ImageFiles:
    """A folder (searched recursively) of PNG/JPEG images, 8-bit (256 levels).

    By default the split is read into memory once (fastest for small folders). With ``stream`` it is an
    :class:`~scoreflow.data.streamed.ImageFiles` that reads each batch's files when training needs them, with
    ``workers`` DataLoader processes, so memory does not grow with the folder (only the file list is held).

    ``channels`` is inferred from the files unless given: 1 if every image is grey, 3 (RGB) if every one is
    colour; a folder that mixes them needs ``channels``. An alpha channel is dropped with a warning.

    Transforms (default: none): ``resize`` scales each image's shorter side to that many pixels (aspect kept),
    ``crop`` cuts the centre square of that size, so images of mixed sizes become one size; ``flip`` makes training
    flip each drawn image left-right with probability 1/2 (seeded, so resume stays exact). Without ``resize`` and
    ``crop`` every image must have the same size. When every image lies in a first-level subfolder and there are
    at least two of them, the subfolders are the classes (torchvision's ImageFolder convention): labels are their
    indices in sorted order.
    """
    check_split(split)
    resize, crop = _optional_size("resize", resize), _optional_size("crop", crop)
    for option, value in (("flip", flip), ("stream", stream)):
        if not isinstance(value, bool):
            raise ValueError(f"{option} must be true or false, got {value!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a number of processes >= 0, got {workers!r}")
    if workers and not stream:
        raise ValueError(f"workers={workers} reads a streamed folder; give stream=true as well (an in-memory folder "
                         "is read once, without workers)")
    if data_dir is None or not Path(data_dir).is_dir():
        raise FileNotFoundError(f"dataset 'folder' needs --data-dir pointing at a folder of images, got {data_dir!r}")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), or left out to infer it, got {channels!r}")
    check_test_fraction(test_fraction)
    files = sorted(p for p in Path(data_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} images in {data_dir}")
    if channels is None:
        channels = infer_channels(files)
    labels = _class_labels(Path(data_dir), files)
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(files) * test_fraction)
    idx = order[n_test:] if split == "train" else order[:n_test]
    if stream:
        return ImageFiles([files[i] for i in idx.tolist()], None if labels is None else labels[idx],
                          channels=channels, resize=resize, crop=crop, levels=EIGHT_BIT_LEVELS, hflip=flip,
                          workers=workers)
    arrays, size = [], None
    for path in files:
        arr = read_image(path, channels, resize, crop)
        if size is None:
            size = arr.shape
        elif arr.shape != size:
            raise ValueError(f"{path}: size {arr.shape[:2]} differs from {size[:2]}; all images must share one size "
                             "(or give the dataset options resize and crop)")
        arrays.append(arr if channels == 3 else arr[..., None])
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return TensorData(x[idx], None if labels is None else labels[idx], "image", "folder",
                      levels=EIGHT_BIT_LEVELS, hflip=flip)  # read as 8-bit by PIL


def _class_labels(root: Path, files: list[Path]) -> torch.Tensor | None:
    """ImageFolder's labels: the index of each file's first-level subfolder, when every file has one and there
    are at least two."""
    parts = [path.relative_to(root).parts for path in files]
    if any(len(p) < 2 for p in parts):
        return None
    classes = sorted({p[0] for p in parts})
    if len(classes) < 2:
        return None
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[p[0]] for p in parts], dtype=torch.int64)


def _toy(name: str, split: str, n: int, seed: int) -> TensorData:
    check_split(split)
    g = torch.Generator().manual_seed(seed + (0 if split == "train" else 1_000_003))
    out = TOY_SAMPLERS[name](n, g)
    x, labels = out if isinstance(out, tuple) else (out, None)
    return TensorData(x.float(), labels, "vector", name)


def _ring(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of the 8-mode ring and, as labels, the mode each was drawn from."""
    from scoreflow.oracles import GaussianMixture

    return GaussianMixture.ring().sample(n, generator=g)


def _moons(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half-moons and, as labels, which moon each point is on (1: the upper one)."""
    upper = torch.rand(n, generator=g) < 0.5
    angle = torch.rand(n, generator=g) * math.pi
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) * 2 + 0.1 * torch.randn(n, 2, generator=g), upper.long()


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = torch.rand(n, generator=g) * 4 - 2
    x2 = torch.rand(n, generator=g) - torch.randint(0, 2, (n,), generator=g).float() * 2
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], 1) * 2


def _swiss_roll(n: int, g: torch.Generator) -> torch.Tensor:
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 3
    return x + 0.1 * torch.randn(n, 2, generator=g)


#: The sample shape of every built-in dataset whose shape never varies (a checkpoint trained on one must record it).
SAMPLE_SHAPES: dict[str, tuple[int, ...]] = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "digits": (1, 8, 8),
                                             "ring": (2,), "two_moons": (2,), "checkerboard": (2,), "swiss_roll": (2,)}

TOY_SAMPLERS = {"ring": _ring, "two_moons": _moons, "checkerboard": _checkerboard, "swiss_roll": _swiss_roll}


def _toy_factory(name: str):
    def factory(split: str = "train", *, data_dir: str | Path | None = None, n: int = 10_000,
                seed: int = 0) -> TensorData:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"n must be a positive number of samples, got {n!r}")
        check_request(f"dataset {name!r} with n={n:,}", n, (2,), bytes_per_value=16)  # draws and temporaries
        return _toy(name, split, n, seed)

    factory.__doc__ = f"2-D toy set '{name}': n seeded samples per split (data_dir is not used)."
    return factory
