"""The benchmarks run and produce complete records (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import pytest
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

    record = run_training([4], blocks=2, steps_per_block=1, data_dir=None,
                          variants=("fp32", "fused_adam", "channels_last", "bf16"))
    res = record["results"]["4"]
    assert set(res["images_per_s"]) == {"scoreflow", "hand-written"} and res["ratio_scoreflow_over_handwritten"] > 0
    pairs = res["paired_block_ratios"]
    assert 0 < pairs["min"] <= pairs["median"] <= pairs["max"]
    assert len(record["loadavg_before"]) == len(record["loadavg_after"]) == 3
    effects = record["variant_effects"]["variants"]
    assert set(effects) == {"fp32", "fused_adam", "channels_last", "bf16"}
    for name, row in effects.items():  # a number, or the honest reason it could not run
        assert ("error" in row) or (row["images_per_s"] > 0 and row["ratio_to_fp32"] > 0), (name, row)
    assert effects["fp32"]["ratio_to_fp32"] == 1.0


def test_quick_benchmarks_are_complete_and_correct(tmp_path):
    """`python -m benchmarks --quick`: every suite present, every compatible sampler measured, exact answers hold."""
    import scoreflow as sf
    from benchmarks.__main__ import run_all
    from benchmarks.oracles import ring
    from benchmarks.quality import variants

    record = run_all(tmp_path, quick=True)
    host = sf.PluginHost(autoload=True)
    found = variants(host, ring(1000))
    names = {v.name for v in found}
    measured = {(q["sampler"], q["budget"]) for q in record["quality"] if q["oracle"] == "ring-2d"}
    adaptive = {"gotta_go_fast"}  # its NFE follows its tolerances, not a budget: one row of its own
    adaptive_ode = {v.name for v in found if v.family == "ode-adaptive"}  # likewise, at their defaults
    assert {"ode:dopri8", "ode:bosh3"} <= adaptive_ode and "ode:explicit_adams" in names - adaptive_ode
    tuned = {n for n in names if n.endswith("@tuned")}  # few-step only: measured up to NFE 20
    assert tuned, "the step-wise ODE solvers also run on tuned grids"
    for name in names - adaptive - adaptive_ode - tuned:
        assert (name, 100) in measured, f"{name} missing at NFE 100"
    for name in adaptive_ode:
        assert (f"{name}(default tol)", None) in measured, name
    for name in tuned:
        assert (name, 20) in measured and (name, 100) not in measured, name
    if adaptive & names:
        assert any(q["sampler"] == "gotta_go_fast(default tol)" for q in record["quality"])
    # every other registered SDE (the vp plugin's vp and subvp, ve_tutorial) gets the ring as an oracle
    others = {f"ring-2d/{name}" for name in host.available("sde") if name != "ve"}
    assert others and others <= {q["oracle"] for q in record["quality"]} and not record["quality_sdes_skipped"]
    for oracle in others:
        rows = [q for q in record["quality"] if q["oracle"] == oracle and "error" not in q]
        floor = next(q for q in rows if q["sampler"] == "ode:dopri5(tol=1e-05)")
        best = min(abs(q["logp_gap"]) for q in rows if q["budget"] == 100)
        assert abs(floor["logp_gap"]) < 0.1 and best < 0.1 and floor["weight_tv"] < 0.1, (oracle, floor, best)
    at100 = {q["sampler"]: q for q in record["quality"]
             if q["oracle"] == "ring-2d" and q["budget"] == 100 and "error" not in q}
    for name in ("euler", "reverse_diffusion", "torchsde:euler", "ode:rk4"):
        assert at100[name]["nfe"] <= 101 and abs(at100[name]["logp_gap"]) < 0.3 and at100[name]["weight_tv"] < 0.1
    exact = next(e for e in record["likelihood"]["estimators"] if e["estimator"] == "exact")
    assert exact["mean_abs_error"] < 0.05
    methods = {m["method"]: m for m in record["likelihood"]["methods"]}
    assert methods["exponential, 40 steps"]["nfe"] == 121 and methods["exponential, 40 steps"]["mean_abs_error"] < 0.05
    tutorial = record["likelihood"]["vs_tutorial"]["tutorial_scipy_rk45"]
    assert tutorial["function_calls"] > 0 and abs(tutorial["mean_error"]) < 4.0  # ~4 standard errors: one Gaussian probe, 100 points
    assert set(record["overhead"]["results"]) == {"tiny MLP", "exact mixture score"}
    assert record["peers"]["rows"] or record["peers"]["unavailable"]
    report = (tmp_path / "report.md").read_text()
    assert record["end_to_end"]["samplers"] and record["end_to_end"]["test_bpd"] > 0
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6."):
        assert heading in report
    assert (tmp_path / "quality.png").stat().st_size > 10_000


def test_kdiffusion_budgets_count_network_evaluations():
    """Levels per budget follow each k-diffusion sampler's evaluations (Heun-type: 2 per level but the last)."""
    from benchmarks.kdiffusion_peer import levels_for_budget

    assert levels_for_budget("dpmpp_2m", 50) == 50 and levels_for_budget("dpmpp_2m_sde", 20) == 20
    assert levels_for_budget("heun", 50) == 25 and levels_for_budget("heun_churn10", 49) == 25
    with pytest.raises(KeyError):
        levels_for_budget("not_a_sampler", 10)


def test_mnist_sampler_tables_name_the_best_of_each_library():
    from benchmarks.mnist_samplers import markdown

    def row(sampler, budget, fd, peer=None):
        return {"sampler": sampler, "budget": budget, "nfe": budget or 1000, "frechet_distance": fd,
                "confident_fraction": 0.5, "seconds": 1.0, **({"peer": peer} if peer else {})}

    result = {"pretrained": "m", "weights": "ema", "n": 8, "reference_steps": 1000, "budgets": [5],
              "references": {"real_images": {"frechet_distance": 8.0}},
              "rows": [row("euler_maruyama (reference)", None, 20.0), row("ipndm", 5, 30.0), row("unipc", 5, 40.0),
                       row("k-diffusion lms@exponential", 5, 35.0, "k-diffusion")]}
    text = markdown(result)
    assert "**NFE 5**: best scoreflow `ipndm` 30.00 (1.50x the reference), best k-diffusion `lms@exponential` 35.00" \
        in text
    assert text.index("| ipndm |") < text.index("| k-diffusion lms@exponential |") < text.index("| unipc |")


def test_compare_lists_exactly_the_rows_that_moved(tmp_path):
    import json

    from benchmarks.compare import compare

    rows = [{"oracle": "ring-2d", "sampler": s, "budget": 10, "nfe": 10, "weight_tv": 0.01, "spread_ratio": 1.0,
             "logp_gap": g} for s, g in (("euler", 0.5), ("unipc", 2466.3186))]
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps({"quality": rows}))
    moved = [dict(rows[0], logp_gap=0.4), dict(rows[1], logp_gap=2466.3177), dict(rows[0], sampler="deis")]
    new.write_text(json.dumps({"quality": moved}))
    result = compare(str(old), str(new))
    assert result["equal"] == 1  # 2466.3186 -> 2466.3177 is within 1e-4 relative
    assert result["changed"] == [(("ring-2d", "euler", 10), {"logp_gap": (0.5, 0.4)})]
    assert result["only_new"] == [("ring-2d", "deis", 10)] and result["only_old"] == []


def test_mnist_sampler_tables_report_the_confirmed_means_and_peer_labels_parse_back():
    from benchmarks.mnist_samplers import markdown, peer_choice

    assert peer_choice("k-diffusion dpmpp_2m_sde_eta3@exponential") == ("dpmpp_2m_sde_eta3", "exponential")
    assert peer_choice("k-diffusion lms") == ("lms", "karras")
    rows = [{"sampler": "euler_maruyama (reference)", "budget": None, "nfe": 1000, "frechet_distance": 20.0,
             "confident_fraction": 0.5, "seconds": 1.0}]
    confirmed = [{"sampler": "euler_maruyama (reference)", "budget": None, "peer": None, "seeds": [1000, 2000],
                  "frechet_distances": [20.0, 22.0], "mean": 21.0},
                 {"sampler": "deis", "budget": 5, "peer": None, "seeds": [1000, 2000],
                  "frechet_distances": [40.0, 44.0], "mean": 42.0}]
    result = {"pretrained": "m", "weights": "ema", "n": 8, "reference_steps": 1000, "budgets": [5],
              "references": {"real_images": {"frechet_distance": 8.0}}, "rows": rows, "confirmed": confirmed}
    text = markdown(result)
    assert "the ratio to the reference's mean 21.00" in text
    assert "| 5 | deis | 42.00 | 2.000 | 40.0, 44.0 |" in text


def test_mnist_sampler_candidates_run_stochastic_predictors_on_more_grids_and_noise_shares():
    import scoreflow as sf
    from benchmarks.mnist_samplers import STOCHASTIC_ETAS, STOCHASTIC_SCHEDULES, candidates

    host = sf.get_host()
    if "dpmpp_2m_sde" not in host.available("predictor"):
        pytest.skip("scoreflow-fast is not installed")
    found = {label: (sampler, extra) for label, sampler, extra in candidates(host, sf.create("sde", "ve"), 10)}
    sampler, extra = found["dpmpp_2m_sde(eta=3)@uniform_t"]
    assert (sampler.schedule, sampler.predictor_options, extra) == ("uniform_t", {"eta": 3.0},
                                                                     {"schedule": "uniform_t", "eta": 3.0})
    assert len([label for label in found if label.startswith("dpmpp_2m_sde")]) == \
        1 + len(STOCHASTIC_SCHEDULES) * len(STOCHASTIC_ETAS)
    assert not any(label.startswith("deis(") for label in found)  # deterministic: its preferred grid only
    assert found["deis"][1] == {"schedule": "karras"}


MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="MNIST IDX files not in ../shared/data/mnist")
def test_likelihood_mnist_quick():
    """benchmarks/likelihood_mnist on two test images with two of its variants, against its tight reference."""
    from benchmarks import likelihood_mnist

    chosen = ["tutorial RK45 tol 1e-2", "scoreflow exponential in log sigma, 13 steps"]
    record = likelihood_mnist.run(str(MNIST_DIR), images=2, batch=2, repeats=1, ema=True, pretrained="mnist-tutorial",
                                  variants=chosen)
    rows = {r["variant"]: r for r in record["rows"]}
    assert list(rows) == chosen and record["eps"] == 1e-3
    assert rows[chosen[1]]["nfe"] == 40 and rows[chosen[1]]["max_abs_error_bpd"] < 0.05
    assert rows[chosen[0]]["nfe"] > 40 and rows[chosen[0]]["max_abs_error_bpd"] < 0.2
    assert 1.5 < record["reference_mean_bpd"] < 3.5
    with pytest.raises(ValueError, match="Unknown variants \\['rk5'\\]"):
        likelihood_mnist.run(str(MNIST_DIR), images=2, batch=2, repeats=1, ema=True, variants=["rk5"])


def test_likelihood_solver_sweep_covers_every_registered_solver_and_sde():
    """Suite 2's sweep (full runs only): a row per (SDE oracle, ODE solver) plus the exponential method; the
    adaptive solves reach the exact density under VE and the plugin's VP."""
    import scoreflow as sf
    from benchmarks.likelihood import solver_sweep
    from benchmarks.oracles import ring, under_registered_sdes

    host = sf.PluginHost(autoload=True)
    base = ring(20_000)
    vp = next(o for o in under_registered_sdes(base, host)[0] if o.name == "ring-2d/vp")
    rows = solver_sweep([base, vp], 5, 1e-5, host)
    expected = {(o, s) for o in ("ring-2d", "ring-2d/vp")
                for s in [*host.available("ode_solver"), "exponential (20 steps)"]}
    assert {(r["oracle"], r["solver"]) for r in rows} == expected
    for oracle in ("ring-2d", "ring-2d/vp"):
        dopri5 = next(r for r in rows if r["oracle"] == oracle and r["solver"] == "dopri5")
        assert dopri5["nfe"] > 0 and dopri5["mean_abs_error"] < 0.01, dopri5


def test_mnist_models_report_runs_end_to_end_on_a_few_digits(tmp_path):
    """benchmarks.mnist_models: calibration of every shipped model, ODE/reference/few-step rows with their
    ratios and the pixel-range share, bits/dim; and the page it renders names each."""
    import json

    from benchmarks import mnist_models

    MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    out, page = tmp_path / "r.json", tmp_path / "page.md"
    mnist_models.main(["--data-dir", str(MNIST_DIR), "--models", "mnist", "--n", "4", "--batch", "4",
                       "--seeds", "0", "1", "--budgets", "5", "--reference-steps", "3", "--n-bpd", "2",
                       "--bpd-models", "mnist", "--tune-trajectories", "2", "--tune-fine-steps", "16", "--tune-sweeps", "1", "--n-calibration", "8", "--images", str(tmp_path), "--out", str(out), "--page", str(page)])
    result = json.loads(out.read_text())
    assert set(result["calibration"]) == set(mnist_models.SHIPPED)
    rows = {r["sampler"]: r for r in result["sampling"]["mnist"]["rows"]}
    ode = rows["probability-flow ODE (dopri5)"]
    assert len(ode["fd"]["values"]) == 2 and 0 <= min(ode["share_in_range"]) <= 1
    assert any(label.endswith("@ NFE 5") for label in rows)
    assert rows["dpmpp_2m (tuned grid) @ NFE 5"]["tune_seconds"][0] > 0
    assert result["bpd"]["mnist"]["n"] == 2
    text = page.read_text()
    for heading in ("## Denoiser calibration", "## Sampling `mnist`", "## Test bits/dim"):
        assert heading in text
    assert (tmp_path / "calibration-mnist-tutorial.png").is_file()


def test_render_prints_every_row_of_a_stored_record(capsys):
    """`python -m benchmarks --render RECORD`: the report's full tables from a record in benchmarks/results."""
    import json

    from benchmarks.__main__ import main as bench_main

    record = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "2026-11-30-quality.json"
    bench_main(["--render", str(record)])
    text = capsys.readouterr().out
    assert "## 1. Sample quality against NFE (exact oracles)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ring-2d |") or line.startswith("| digits-64d |")]
    assert len(rows) == len(json.loads(record.read_text())["quality"])


def test_diffusers_mnist_comparison_trains_resumes_and_compares_on_a_few_digits(tmp_path, monkeypatch):
    """benchmarks.diffusers_mnist_train resumes from its state and saves a pipeline; benchmarks.diffusers_mnist
    runs diffusers' schedulers and scoreflow's samplers on it, names each library's best per budget, and measures
    bits/dim through the bridge."""
    import json

    pytest.importorskip("diffusers")
    pytest.importorskip("scoreflow_diffusers")
    from benchmarks import diffusers_mnist, diffusers_mnist_train

    MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    run = tmp_path / "run"
    common = ["--data-dir", str(MNIST_DIR), "--out", str(run), "--batch-size", "2", "--warmup", "1",
              "--save-every", "1"]
    diffusers_mnist_train.main([*common, "--steps", "1"])
    diffusers_mnist_train.main([*common, "--steps", "2"])  # resumes at step 1
    assert (run / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    out, page = tmp_path / "r.json", tmp_path / "page.md"
    diffusers_mnist.main(["--model", str(run / "pipeline"), "--data-dir", str(MNIST_DIR), "--n", "3", "--batch", "3",
                          "--seeds", "0", "--budgets", "5", "--reference-steps", "3", "--tune-trajectories", "0",
                          "--bpd", "2", "--out", str(out), "--page", str(page)])
    result = json.loads(out.read_text())
    rows = {r["sampler"]: r for r in result["rows"]}
    assert rows["DDIM (trailing) @ NFE 5"]["nfe"] == 5 and rows["Heun Karras @ NFE 5"]["nfe"] == 5
    assert rows["dpmpp_2m @ NFE 5"]["library"] == "scoreflow"  # tuned grids: see the mnist_models test
    best = result["best"]["5"]
    for library in ("diffusers", "scoreflow"):
        chosen = best[library]["fd"]["mean"]
        assert chosen == min(r["fd"]["mean"] for r in result["rows"] if r["library"] == library and r["budget"] == 5)
    assert result["bpd"]["n"] == 2 and result["bpd"]["mean"] > 0
    text = page.read_text()
    assert "## Best of each library per budget" in text and "Test bits/dim through the bridge" in text
    other = json.loads(out.read_text())
    other["seeds"], other["command"] = [5], "another seed"
    for row in other["rows"]:
        row["fd"] = diffusers_mnist.mean_and_error([row["fd"]["mean"] + 1.0])
    (tmp_path / "b.json").write_text(json.dumps(other))
    diffusers_mnist.main(["--merge", str(out), str(tmp_path / "b.json"), "--out", str(tmp_path / "m.json"),
                          "--page", str(page)])
    merged = json.loads((tmp_path / "m.json").read_text())
    row = next(r for r in merged["rows"] if r["sampler"] == "DDIM (trailing) @ NFE 5")
    assert merged["seeds"] == [0, 5] and len(row["fd"]["values"]) == 2 and row["fd"]["std_error"] > 0
    # truncated grids: explored on another seed, the best added to the record without measuring its rows again
    monkeypatch.setattr(diffusers_mnist, "TRUNCATION_SCHEDULES", ("karras",))  # a smaller grid, for time
    monkeypatch.setattr(diffusers_mnist, "TRUNCATION_STARTS", (33.0,))
    explored = tmp_path / "explore.json"
    diffusers_mnist.main(["--model", str(run / "pipeline"), "--data-dir", str(MNIST_DIR), "--n", "3", "--batch",
                          "3", "--seeds", "9", "--budgets", "5", "--bpd", "0", "--explore-truncation",
                          "--out", str(explored), "--page", str(page)])
    grids = json.loads(explored.read_text())["rows"]
    assert len(grids) == len(diffusers_mnist.TRUNCATION_PREDICTORS) * len(diffusers_mnist.TRUNCATION_SCHEDULES) * \
        len(diffusers_mnist.TRUNCATION_STARTS) * len(diffusers_mnist.TRUNCATION_ENDS)
    assert all("sigma" in r["sampler"] and r["nfe"] <= 5 for r in grids)
    added = tmp_path / "added.json"
    diffusers_mnist.main(["--model", str(run / "pipeline"), "--data-dir", str(MNIST_DIR), "--n", "3", "--batch", "3",
                          "--seeds", "0", "--budgets", "5", "--reference-steps", "3", "--bpd", "0", "--tune-trajectories",
                          "0", "--extend",
                          str(out), "--truncation-from", str(explored), "--out", str(added), "--page", str(page)])
    new_rows = json.loads(added.read_text())["rows"]
    best_grid = min(grids, key=lambda r: r["fd"]["mean"])
    assert [r["sampler"] for r in new_rows] == [best_grid["sampler"]]  # the rows of --extend are not measured
    diffusers_mnist.main(["--merge", str(added), "--extend", str(out), "--out", str(tmp_path / "e.json"),
                          "--page", str(page)])
    extended = json.loads((tmp_path / "e.json").read_text())
    assert len(extended["rows"]) == len(result["rows"]) + 1 and "Truncated grids" in page.read_text()


def test_folder_minutes_trains_in_stages_and_evaluates_each(tmp_path):
    """benchmarks.folder_minutes: a generated folder, two resumed stages, the guide's evaluate after each."""
    import json

    from benchmarks import folder_minutes

    out = tmp_path / "r.json"
    folder_minutes.main(["--folder", str(tmp_path / "shapes"), "--run", str(tmp_path / "run"), "--images", "24",
                         "--stages", "2", "3", "--eval-samples", "4", "--bpd-images", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert [s["steps"] for s in result["stages"]] == [2, 3] and len(list((tmp_path / "shapes").glob("*.png"))) == 24
    assert all("uniform_noise" in s["quality"]["references"] for s in result["stages"])
    assert result["stages"][1]["minutes_trained"] >= result["stages"][0]["minutes_trained"]
    assert str(tmp_path) not in result["command"]
