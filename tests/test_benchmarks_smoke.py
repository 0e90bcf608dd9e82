"""The benchmarks run and produce complete records (no timing assertions)."""

from __future__ import annotations

import torch

import scoreflow as sf
from benchmarks.overhead import handwritten_em, run


def test_overhead_record_is_complete():
    record = run(repeats=1, steps=5, batch=8)
    assert set(record["results"]) == {"tiny MLP", "exact mixture score"}
    for res in record["results"].values():
        assert set(res["median_s"]) == {"scoreflow", "hand-written"}
        assert res["ratio_scoreflow_over_handwritten"] > 0


def test_handwritten_loop_does_the_same_updates():
    sde = sf.VESDE()
    score = sf.GaussianMixture.ring().score_model(sde)
    ours = sf.Sampler(predictor="euler", num_steps=30).sample(score, sde, (64, 2),
                                                               generator=torch.Generator().manual_seed(0))
    theirs = handwritten_em(score, sde, (64, 2), 30, 1e-3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours.samples, theirs, rtol=1e-4, atol=1e-4)


def test_train_throughput_record_is_complete():
    from benchmarks.train_throughput import run as run_training

    record = run_training([4], blocks=1, steps_per_block=1, data_dir=None)
    res = record["results"]["4"]
    assert set(res["images_per_s"]) == {"scoreflow", "hand-written"} and res["ratio_scoreflow_over_handwritten"] > 0
