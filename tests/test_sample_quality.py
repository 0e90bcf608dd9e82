"""Sample quality without labels: KID, nearest-neighbour memorisation, the feature extractors, and on MNIST the
ordering real < weak model < noise in both built-in feature spaces."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scoreflow as sf
from scoreflow.data.base import TensorData
from scoreflow.evaluation.sample_quality import kernel_distance, memorisation, nearest_distances, sample_quality
from scoreflow.models.features import AutoencoderFeatures, ClassifierFeatures

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _kid_by_definition(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased MMD^2 written out as sums over index pairs."""
    k = lambda u, v: (float(u @ v) / x.shape[1] + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    assert kernel_distance(x, y) == pytest.approx(_kid_by_definition(x, y), rel=1e-10)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), st.integers(2, 6), st.integers(1, 4), st.integers(0, 10_000))
def test_kid_is_symmetric_and_ignores_row_order(m, n, dim, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(m, dim, generator=g, dtype=torch.float64), torch.randn(n, dim, generator=g, dtype=torch.float64)
    value = kernel_distance(x, y)
    assert kernel_distance(y, x) == pytest.approx(value, abs=1e-9)
    assert kernel_distance(x.flip(0), y[torch.randperm(n, generator=g)]) == pytest.approx(value, abs=1e-9)


def test_kid_averages_to_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(1)
    same = torch.tensor([kernel_distance(torch.randn(64, 8, generator=g), torch.randn(500, 8, generator=g), seed=i)
                         for i in range(60)])
    assert abs(float(same.mean())) < 4 * float(same.std()) / 60 ** 0.5
    shifts = [kernel_distance(torch.randn(64, 8, generator=g) + s, torch.randn(500, 8, generator=g)) for s in
              (0.5, 1.0, 2.0)]
    assert 3 * float(same.std()) < shifts[0] < shifts[1] < shifts[2]


def test_kid_needs_two_rows_on_each_side():
    with pytest.raises(ValueError, match="at least 2 feature rows"):
        kernel_distance(torch.randn(1, 3), torch.randn(4, 3))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(1, 9), st.integers(0, 10_000))
def test_nearest_distances_are_the_smallest_rms_pixel_distance(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    x, ref = torch.rand(n, 1, 2, 3, generator=g), torch.rand(m, 1, 2, 3, generator=g)
    expected = torch.tensor([min(float(((a - b) ** 2).mean().sqrt()) for b in ref) for a in x])
    assert torch.allclose(nearest_distances(x, ref, chunk=2).float(), expected, atol=1e-6)


def test_memorisation_flags_copies_and_passes_fresh_draws():
    g = torch.Generator().manual_seed(2)
    train = TensorData(torch.rand(400, 1, 4, 4, generator=g))
    held_out = torch.rand(300, 1, 4, 4, generator=g)
    copies = memorisation(train.x[:100], train, held_out)
    assert copies["share_closer_than_held_out"] == 1.0 and copies["median_nearest_train_distance"] == 0.0
    fresh = memorisation(torch.rand(300, 1, 4, 4, generator=g), train, held_out)
    assert fresh["share_closer_than_held_out"] < 0.15  # about the 5 % quantile
    assert fresh["median_nearest_train_distance"] == pytest.approx(fresh["held_out_median_nearest_train_distance"],
                                                                   rel=0.1)


def test_autoencoder_features_are_seeded_cached_and_checked(tmp_path):
    g = torch.Generator().manual_seed(3)
    data = TensorData(torch.rand(50, 3, 12, 10, generator=g), name="colour")
    first = AutoencoderFeatures(steps=20, batch_size=8)
    first.prepare(data, tmp_path)
    cached = list(tmp_path.glob("autoencoder-colour-*.safetensors"))
    assert len(cached) == 1
    again = AutoencoderFeatures(steps=20, batch_size=8)
    again.prepare(data, tmp_path)  # loads the cached weights
    fresh = AutoencoderFeatures(steps=20, batch_size=8)
    fresh.prepare(data, tmp_path / "elsewhere")  # trains again from the same seed
    f = first.features(data.x)
    assert f.shape == (50, 4 * 32) and torch.equal(f, again.features(data.x)) and torch.equal(f, fresh.features(data.x))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        AutoencoderFeatures(steps=0)
    with pytest.raises(ValueError, match="works on images; dataset 'ring' holds vector data"):
        AutoencoderFeatures().check(TensorData(torch.randn(4, 2), kind="vector", name="ring"))
    with pytest.raises(ValueError, match="need a labelled dataset"):
        ClassifierFeatures().check(data)
    with pytest.raises(RuntimeError, match="prepare"):
        AutoencoderFeatures().features(data.x)


def test_feature_extractors_are_a_registered_kind():
    host = sf.get_host()
    assert {"classifier", "autoencoder"} <= set(host.available("feature_extractor"))
    assert isinstance(host.create("feature_extractor", "autoencoder", steps=5), AutoencoderFeatures)


@pytest.fixture(scope="module")
def mnist_and_weak_samples():
    """MNIST train, 2,000 test digits, and 200 samples of the shipped model drawn with 16 Euler steps (a weak
    model: FD about 195 where the model's good samplers reach 23)."""
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    train = sf.create("dataset", "mnist", split="train", data_dir=MNIST_DIR)
    full = sf.create("dataset", "mnist", split="test", data_dir=MNIST_DIR)
    test = TensorData(full.x[:2000], full.labels[:2000], name=full.name, levels=full.levels)
    model, sde, _ = sf.load_pretrained("mnist")
    weak = sf.Sampler(predictor="euler", corrector="none", num_steps=16).sample(
        model, sde, (200, 1, 28, 28), generator=torch.Generator().manual_seed(0)).samples
    return train, test, weak


@pytest.mark.parametrize("features", ["classifier", "autoencoder"])
def test_on_mnist_real_images_score_far_below_a_weak_model_and_noise(tmp_path, features, mnist_and_weak_samples):
    """Fixed seeds: the weak model's samples score worse than real held-out digits and better than noise, in FD
    and KID alike, and copy no training digit."""
    train, test, weak = mnist_and_weak_samples
    extractor = sf.create("feature_extractor", features)
    report = sample_quality(weak, train, test, extractor, tmp_path, seed=0)
    real, noise = report["references"]["real_images"], report["references"]["uniform_noise"]
    for key in ("frechet_distance", "kid"):
        assert real[key] < report[key] < noise[key]
        assert 10 * max(real[key], 0.0) < noise[key]
    assert report["frechet_distance"] > 2 * real["frechet_distance"]
    assert report["memorisation"]["share_closer_than_held_out"] < 0.2
