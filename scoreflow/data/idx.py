"""Reading the IDX files of MNIST and Fashion-MNIST, and fetching them with checksums."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from scoreflow.errors import IDXFormatError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_BYTES = 1 << 31


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse an (uncompressed) IDX buffer into an array, validating the header and size."""
    if len(data) < 4:
        raise IDXFormatError(f"{source}: too short for an IDX header ({len(data)} bytes)")
    zero, dtype_code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype_code not in _DTYPES or not 1 <= ndim <= 4:
        raise IDXFormatError(f"{source}: bad IDX magic {data[:4].hex()} (expected 0000 + type + 1..4 dims)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{source}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[dtype_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise IDXFormatError(f"{source}: dims {dims} need {expected} bytes of data, found {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def read_idx_gz(path: Path) -> np.ndarray:
    """Read a gzip-compressed IDX file (decompressed size bounded, no code executed)."""
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise IDXFormatError(f"{path}: not a readable gzip file ({exc})") from exc
    if len(data) > MAX_BYTES:
        raise IDXFormatError(f"{path}: decompresses to more than {MAX_BYTES} bytes")
    return parse_idx(data, source=str(path))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(filename: str, checksum: str, data_dir: Path, mirrors: tuple[str, ...]) -> Path:
    """Return ``data_dir/filename``, downloading it from ``mirrors`` if absent; SHA-256 verified."""
    path = data_dir / filename
    if path.exists():
        if sha256(path) != checksum:
            raise ValueError(f"{path}: checksum mismatch (expected sha256 {checksum}); delete it to re-download")
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 (fixed https mirrors)
                payload = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        if hashlib.sha256(payload).hexdigest() != checksum:
            errors.append(f"{url}: checksum mismatch")
            continue
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=filename, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
        return path
    raise FileNotFoundError(
        f"{filename} is not in {data_dir} and could not be downloaded (offline?). Tried:\n  "
        + "\n  ".join(errors)
        + f"\nPlace the official file in {data_dir} (or pass --data-dir) and run again."
    )


def load_idx_images(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as ``(N, 1, H, W)`` float32 in ``[0, 1]`` and labels as int64."""
    x = read_idx_gz(images)
    y = read_idx_gz(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise IDXFormatError(f"{images}: expected (N, H, W) uint8 images, got {x.shape} {x.dtype}")
    if y.ndim != 1 or len(y) != len(x):
        raise IDXFormatError(f"{labels}: expected {len(x)} labels, got shape {y.shape}")
    return torch.from_numpy(x.copy()).unsqueeze(1).float() / 255.0, torch.from_numpy(y.astype(np.int64))
