"""Noise-conditional classifiers: training, accuracy per noise level, safe save/load, guidance with them."""

from __future__ import annotations

import json

import pytest
import torch

import scoreflow as sf
from scoreflow.errors import CheckpointError
from scoreflow.models.classifier import ConvClassifier, MLPClassifier, classifier_fn
from scoreflow.sampling.conditioning import ClassifierGuidance
from scoreflow.training.classifier import (
    accuracy_by_noise_level,
    load_classifier,
    save_classifier,
    train_noise_classifier,
)

SDE = sf.VESDE(sigma_min=0.01, sigma_max=10.0)


@pytest.fixture(scope="module")
def ring_classifier():
    data = sf.create("dataset", "ring", n=4000)
    return train_noise_classifier(data, SDE, model="mlp", epochs=8, batch_size=128, lr=3e-3, seed=0)


def test_trained_classifier_is_accurate_at_low_noise_and_at_chance_under_heavy_noise(ring_classifier):
    model, options = ring_classifier
    assert options == {"n_classes": 8, "dim": 2}
    acc = accuracy_by_noise_level(model, sf.create("dataset", "ring", split="test", n=2000), (0.0, 1.0, 50.0))
    assert acc["0"] > 0.99 and acc["1"] > 0.6 and acc["50"] < 0.35, acc


def test_guidance_with_a_trained_classifier_reaches_the_class(ring_classifier):
    model, _ = ring_classifier
    gm = sf.GaussianMixture.ring()
    for label in (0, 5):
        sampler = sf.Sampler(num_steps=300, condition=ClassifierGuidance(classifier_fn(model, SDE), label, scale=2.0))
        x = sampler.sample(gm.score_model(SDE), SDE, (400, 2), generator=torch.Generator().manual_seed(0)).samples
        assert float((gm.assign(x) == label).double().mean()) > 0.95


def test_save_and_load_round_trip(tmp_path, ring_classifier):
    model, options = ring_classifier
    save_classifier(tmp_path / "clf", model, name="mlp", options=options, info={"dataset": "ring"})
    loaded, meta = load_classifier(tmp_path / "clf")
    x, s = torch.randn(5, 2), torch.rand(5)
    assert torch.equal(loaded(x, s), model(x, s)) and meta["dataset"] == "ring" and not loaded.training


def _write(folder, meta, tensors=None):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classifier.json").write_text(json.dumps(meta))
    save_file(tensors or {"w": torch.zeros(1)}, str(folder / "classifier.safetensors"))
    return folder


@pytest.mark.parametrize(("meta", "match"), [
    ({"format": "other"}, "not a scoreflow classifier"),
    ({"format": "scoreflow-classifier", "format_version": 1, "classifier": 3, "options": {}}, "must be a name"),
    ({"format": "scoreflow-classifier", "format_version": 1, "classifier": "bogus", "options": {}}, "bogus"),
    ({"format": "scoreflow-classifier", "format_version": 1, "classifier": "mlp", "options": {"evil": 1}}, "evil"),
    # a huge network is only ever built on the meta device: the shapes disagree, nothing is allocated
    ({"format": "scoreflow-classifier", "format_version": 1, "classifier": "mlp",
      "options": {"dim": 2, "n_classes": 8, "hidden": 10**6}}, "more than 1,000,000,000"),
    ({"format": "scoreflow-classifier", "format_version": 1, "classifier": "mlp",
      "options": {"dim": 2, "n_classes": 8, "hidden": 1000}}, "do not match"),
    ({"format": "scoreflow-classifier", "format_version": 1, "classifier": "conv", "options": {"channels": [1]}},
     "three positive numbers"),
])
def test_hostile_or_corrupt_classifier_files_are_refused(tmp_path, meta, match):
    with pytest.raises(CheckpointError, match=match):
        load_classifier(_write(tmp_path / "c", meta))


def test_missing_and_unreadable_classifier_folders(tmp_path):
    with pytest.raises(CheckpointError, match="no classifier at"):
        load_classifier(tmp_path)
    folder = _write(tmp_path / "c", {})
    (folder / "classifier.json").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_classifier(folder)
    (folder / "classifier.json").write_text(json.dumps({"format": "scoreflow-classifier", "format_version": 1,
                                                        "classifier": "mlp", "options": {"dim": 2, "n_classes": 2}}))
    (folder / "classifier.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot build classifier"):
        load_classifier(folder)


def test_conv_classifier_shapes_and_bad_options():
    net = ConvClassifier(in_channels=3, n_classes=4, channels=(8, 8, 8), embed_dim=16)
    assert net(torch.rand(2, 3, 9, 7), torch.tensor([0.0, 3.0])).shape == (2, 4)
    with pytest.raises(ValueError, match="images"):
        net(torch.rand(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match="n_classes >= 2"):
        MLPClassifier(n_classes=1)


def test_training_needs_labels_and_sane_options():
    unlabelled = sf.create("dataset", "checkerboard", n=100)
    with pytest.raises(ValueError, match="has no labels"):
        train_noise_classifier(unlabelled, SDE, model="mlp")
    with pytest.raises(ValueError, match="epochs >= 1"):
        train_noise_classifier(sf.create("dataset", "ring", n=100), SDE, model="mlp", epochs=0)


def test_quality_classifier_file_name_is_remembered_until_the_data_changes():
    """The evaluation classifier's cache name hashes the data once per dataset object, and again after an
    in-place change (a stale name would pick another dataset's classifier)."""
    from scoreflow.evaluation.metrics import classifier_file_name

    data = sf.create("dataset", "digits", split="train")
    first = classifier_file_name(data)
    assert classifier_file_name(data) == first
    twin = sf.create("dataset", "digits", split="train")
    assert classifier_file_name(twin) == first  # same content, same classifier
    data.x[0, 0, 0, 0] += 0.5
    changed = classifier_file_name(data)
    assert changed != first
    data.labels[1] = (data.labels[1] + 1) % 10
    assert classifier_file_name(data) != changed
