"""Conditional samplers against the exact conditionals of Gaussian mixtures (the table of
docs/guides/controllable-generation.md).

    python -m benchmarks.conditioning_oracle            # about a minute on 2 cores

Cases: the 8-mode ring given x1 = 2.83 and x1 = 2.0 (two modes fit, weights 2 and 4: the hard case), the ring
given x1 = 0 (two modes of equal weight), a 64-D mixture of binary images given half its entries (one mode
fits), and guidance toward one class of the ring with its exact classifier. Each row: mode-weight total
variation, spread ratio and log-density gap against the closed-form conditional (see
``scoreflow.oracles.mixture_report``), beside the unconditional sampler on the unconditional mixture.
"""

from __future__ import annotations

import argparse

import torch

import scoreflow as sf
from scoreflow.oracles import mixture_report
from scoreflow.testing import binary_images_oracle, ring_oracle

SDE = sf.VESDE(sigma_min=0.01, sigma_max=10.0)
SAMPLERS = {"Euler-Maruyama": {"predictor": "euler"},
            "reverse diffusion + Langevin": {"predictor": "reverse_diffusion", "corrector": "langevin"}}


#: RePaint's resampling (10 passes over blocks of 10 steps) on a grid 10 times coarser: the same network evaluations.
REPAINT = {"resample": 9, "resample_jump": 10}


def _ref(gm: sf.GaussianMixture) -> float:
    return gm.entropy_estimate(200_000, generator=torch.Generator().manual_seed(1234))


def rows(n: int, num_steps: int) -> list[tuple[str, str, str, object]]:
    out = []
    ring, binary = ring_oracle(), binary_images_oracle()
    truth, _ = binary.sample(1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    cases = [("ring, x1 = 2.83", ring, torch.tensor([True, False]), torch.tensor([2.83, 0.0]), n),
             ("ring, x1 = 2.0", ring, torch.tensor([True, False]), torch.tensor([2.0, 0.0]), n),
             ("ring, x1 = 0", ring, torch.tensor([True, False]), torch.tensor([0.0, 0.0]), n),
             ("64-D binary images, half known", binary, torch.arange(64) % 2 == 0, truth[0].float(), n // 2)]
    for label, options in SAMPLERS.items():
        sampler = sf.Sampler(num_steps=num_steps, **options)
        for gm, dim, size in ((ring, 2, n), (binary, 64, n // 2)):
            x = sampler.sample(gm.score_model(SDE), SDE, (size, dim), generator=torch.Generator().manual_seed(1))
            out.append((f"unconditional {'ring' if dim == 2 else '64-D'}", label, "none",
                        mixture_report(gm, x.samples, _ref(gm))))
        for case, gm, mask, known, size in cases:
            target = gm.given_entries(mask, known)
            for condition, extra in (("inpaint", {}), ("inpaint_smc", {}), ("inpaint + RePaint", REPAINT)):
                steps = num_steps // (REPAINT["resample"] + 1) if extra else num_steps  # the same NFE
                s = sf.Sampler(num_steps=max(steps, 1), condition=condition.split()[0],
                               condition_options={"known": known, "mask": mask}, **options, **extra)
                x = s.sample(gm.score_model(SDE), SDE, (size, gm.dim), generator=torch.Generator().manual_seed(1))
                out.append((case, label, condition, mixture_report(target, x.samples[:, ~mask], _ref(target))))
        groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        s = sf.Sampler(num_steps=num_steps, condition="classifier_guidance",
                       condition_options={"classifier": ring.label_classifier(SDE, groups), "labels": 1}, **options)
        x = s.sample(ring.score_model(SDE), SDE, (n, 2), generator=torch.Generator().manual_seed(1))
        target = ring.given_label(1, groups)
        out.append(("ring, class 1 of 4", label, "classifier_guidance (exact, scale 1)",
                    mixture_report(target, x.samples, _ref(target))))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000, help="samples per row (half for the 64-D case)")
    p.add_argument("--num-steps", type=int, default=500)
    args = p.parse_args(argv)
    print(f"{args.n} samples, {args.num_steps} steps, VE SDE (sigma 0.01 to 10)\n")
    print("| target | sampler | condition | mode-weight TV | spread ratio | log-density gap |")
    print("|---|---|---|---|---|---|")
    for case, label, condition, r in rows(args.n, args.num_steps):
        print(f"| {case} | {label} | {condition} | {r.weight_tv:.3f} | {r.spread_ratio:.3f} | {r.logp_gap:+.3f} |")


if __name__ == "__main__":
    main()
