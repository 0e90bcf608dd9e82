"""Datasets: IDX parsing (real files and hostile ones), offline download errors, folders, toys."""

from __future__ import annotations

import gzip
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import scoreflow as sf
from scoreflow.data import IDXFormatError, parse_idx, read_idx_gz
from scoreflow.data import sources

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="../shared/data/mnist is not on this machine")
def test_real_mnist_files():
    train = sf.create("dataset", "mnist", split="train", data_dir=SHARED / "mnist")
    test = sf.create("dataset", "mnist", split="test", data_dir=SHARED / "mnist")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == torch.float32 and float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert torch.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.mark.skipif(not (SHARED / "fashion-mnist").is_dir(), reason="../shared/data/fashion-mnist is absent")
def test_real_fashion_mnist_files():
    test = sf.create("dataset", "fashion-mnist", split="test", data_dir=SHARED / "fashion-mnist")
    assert test.x.shape == (10000, 1, 28, 28) and torch.bincount(test.labels).tolist() == [1000] * 10


def _idx(dims, dtype_code=0x08, payload=None) -> bytes:
    header = bytes([0, 0, dtype_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    return header + (payload if payload is not None else bytes(int(np.prod(dims))))


def test_idx_parser_round_trip_and_hostile_headers():
    arr = parse_idx(_idx((2, 3, 3), payload=bytes(range(18))))
    assert arr.shape == (2, 3, 3) and arr[1, 2, 2] == 17
    for bad, match in [(b"\x00\x00", "too short"), (b"\x01\x00\x08\x01" + bytes(8), "bad IDX magic"),
                       (_idx((4,), payload=bytes(3)), "need 4 bytes"), (_idx((2**31, 2**31), payload=b""), "need")]:
        with pytest.raises(IDXFormatError, match=match):
            parse_idx(bad)


def test_gzip_errors_are_clear(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(IDXFormatError, match="not a readable gzip file"):
        read_idx_gz(bad)
    good = tmp_path / "y.gz"
    good.write_bytes(gzip.compress(_idx((3,))))
    assert read_idx_gz(good).shape == (3,)


def test_missing_files_offline_fail_with_instructions(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match=r"(?s)t10k-images-idx3-ubyte.gz is not in .* could not be downloaded"):
        sf.create("dataset", "mnist", split="test", data_dir=tmp_path)


def test_checksum_mismatch_is_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx((1, 28, 28))))
    with pytest.raises(ValueError, match="checksum mismatch"):
        sf.create("dataset", "mnist", split="test", data_dir=tmp_path)


def test_digits_splits_are_disjoint_and_scaled():
    train, test = sources.digits("train"), sources.digits("test")
    assert len(train) + len(test) == 1797 and train.sample_shape == (1, 8, 8)
    assert float(train.x.max()) == 1.0 and float(train.x.min()) == 0.0
    joined = torch.cat([train.x, test.x]).reshape(1797, -1)
    assert len(torch.unique(joined, dim=0)) >= 1790  # near-duplicates exist in the source, not our split
    with pytest.raises(ValueError, match="Unknown split 'valid'. Available: train, test"):
        sources.digits("valid")


def test_folder_dataset(tmp_path):
    from PIL import Image

    for i in range(5):
        Image.fromarray((np.full((6, 6), i * 50)).astype(np.uint8)).save(tmp_path / f"{i}.png")
    data = sf.create("dataset", "folder", split="train", data_dir=tmp_path, test_fraction=0.2)
    assert data.x.shape == (4, 1, 6, 6) and float(data.x.max()) <= 1.0
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match="differs from"):
        sf.create("dataset", "folder", data_dir=tmp_path)
    (tmp_path / "odd.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable image"):
        sf.create("dataset", "folder", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="needs --data-dir"):
        sf.create("dataset", "folder")


@pytest.mark.parametrize("name", ["ring", "two_moons", "checkerboard", "swiss_roll"])
def test_toy_sets(name):
    a = sf.create("dataset", name, split="train", n=300)
    b = sf.create("dataset", name, split="train", n=300)
    c = sf.create("dataset", name, split="test", n=300)
    assert a.x.shape == (300, 2) and a.kind == "vector" and torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    with pytest.raises(TypeError, match=r"dataset '.*' does not take option\(s\) 'bogus'. Allowed: .*seed"):
        sf.create("dataset", name, bogus=1)


def test_non_finite_or_integer_data_is_refused_with_its_name():
    from scoreflow.data import TensorData

    with pytest.raises(ValueError, match=r"data 'toy' contains 1 non-finite"):
        TensorData(torch.tensor([[float("nan"), 1.0]]), kind="vector", name="toy")
    with pytest.raises(TypeError, match=r"floating-point.*int64"):
        TensorData(torch.tensor([[1, 2]]), kind="vector", name="toy")


def _save(path, array, mode=None):
    from PIL import Image

    Image.fromarray(array.astype(np.uint8), mode).save(path)


def test_folder_channels_follow_the_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        _save(tmp_path / f"{i}.png", rng.integers(0, 256, (6, 6, 3)))
    data = sf.create("dataset", "folder", data_dir=tmp_path, test_fraction=0.0)
    assert data.x.shape == (4, 3, 6, 6) and data.levels == 256  # RGB with no option
    grey = sf.create("dataset", "folder", data_dir=tmp_path, channels=1, test_fraction=0.0)
    assert grey.x.shape == (4, 1, 6, 6)
    _save(tmp_path / "alpha.png", rng.integers(0, 256, (6, 6, 4)))
    with pytest.warns(UserWarning, match=r"1 image\(s\) have an alpha channel .*alpha.png.*dropped"):
        assert sf.create("dataset", "folder", data_dir=tmp_path, test_fraction=0.0).x.shape == (5, 3, 6, 6)
    _save(tmp_path / "grey.png", rng.integers(0, 256, (6, 6)))
    with pytest.raises(ValueError, match=r"mixes grey images \(.*grey.png\) and colour ones .*pass the dataset option"):
        sf.create("dataset", "folder", data_dir=tmp_path)
    assert sf.create("dataset", "folder", data_dir=tmp_path, channels=3, test_fraction=0.0).x.shape == (6, 3, 6, 6)


@pytest.mark.parametrize("bad", [2, 4, 0, True, "3"])
def test_folder_channels_must_be_one_or_three(tmp_path, bad):
    _save(tmp_path / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match=f"channels must be 1 \\(grey\\) or 3 \\(RGB\\).*got {bad!r}"):
        sf.create("dataset", "folder", data_dir=tmp_path, channels=bad)


@pytest.mark.parametrize("bad", [1.5, -0.5, 1, "0.2", True])
def test_test_fraction_is_a_share(tmp_path, bad):
    _save(tmp_path / "a.png", np.zeros((4, 4)))
    for name, options in (("digits", {}), ("folder", {"data_dir": tmp_path})):
        with pytest.raises(ValueError, match=f"test_fraction must be a number in \\[0, 1\\), got {bad!r}"):
            sf.create("dataset", name, test_fraction=bad, **options)


def test_an_image_declaring_a_huge_size_is_refused_from_its_header(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0, 0, 0)  # 50000 x 50000 grey, no pixel data needed
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match=r"bomb.png: not a readable image .*(exceeds limit|more than)"):
        sf.create("dataset", "folder", data_dir=tmp_path)


def test_folder_transforms_make_mixed_sizes_one_and_subfolders_are_classes(tmp_path):
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate([(10, 14), (20, 12), (9, 9), (30, 30)]):
        label = "cats" if i % 2 else "dogs"
        (tmp_path / label).mkdir(exist_ok=True)
        _save(tmp_path / label / f"{i}.png", rng.integers(0, 256, (h, w, 3)))
    with pytest.raises(ValueError, match="differs from .*give the dataset options resize and crop"):
        sf.create("dataset", "folder", data_dir=tmp_path)
    data = sf.create("dataset", "folder", data_dir=tmp_path, resize=8, crop=8, test_fraction=0.0)
    assert data.x.shape == (4, 3, 8, 8) and data.levels == 256
    assert torch.equal((data.x * 255).round(), data.x * 255)  # still on the 8-bit grid
    assert sorted(data.labels.tolist()) == [0, 0, 1, 1]  # cats 0, dogs 1
    with pytest.raises(ValueError, match=r"crop 9 is larger than the image .*after resize 8"):
        sf.create("dataset", "folder", data_dir=tmp_path, resize=8, crop=9)


@pytest.mark.parametrize(("option", "bad"), [("resize", 0), ("crop", True), ("crop", 2.5), ("flip", "yes")])
def test_folder_transform_options_are_checked(tmp_path, option, bad):
    _save(tmp_path / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match=f"{option} must be"):
        sf.create("dataset", "folder", data_dir=tmp_path, **{option: bad})


def test_flipped_training_resumes_exactly(tmp_path):
    from scoreflow.training import TrainConfig, Trainer

    rng = np.random.default_rng(2)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(8):
        _save(images / f"{i}.png", rng.integers(0, 256, (8, 8)))
    options = dict(dataset="folder", data_dir=str(images), dataset_options={"flip": True, "test_fraction": 0.0},
                   model_options={"channels": [8, 16, 16, 16], "embed_dim": 16}, batch_size=4, log_every=1)
    one = Trainer(TrainConfig(steps=4, **options), tmp_path / "one", progress=False)
    one.run()
    Trainer(TrainConfig(steps=2, **options), tmp_path / "two", progress=False).run()
    two = Trainer(TrainConfig(steps=4, **options), tmp_path / "two", progress=False)
    two.run(resume=True)
    assert one.data.hflip and all(torch.equal(v, two.model.state_dict()[k]) for k, v in one.model.state_dict().items())
    plain = Trainer(TrainConfig(steps=4, **{**options, "dataset_options": {"test_fraction": 0.0}}), tmp_path / "p",
                    progress=False)
    plain.run()
    assert not all(torch.equal(v, plain.model.state_dict()[k]) for k, v in one.model.state_dict().items())
