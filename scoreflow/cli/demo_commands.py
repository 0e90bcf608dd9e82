"""The demonstrations: ``scoreflow demo`` (the shipped MNIST model), ``digits-demo`` (train on the 8x8 digits)
and ``oracle-demo`` (every sampler on a 2-D mixture with its exact score)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from scoreflow.cli.arguments import add_command, positive_int
from scoreflow.cli.loading import writable_folder


@attrs.frozen(kw_only=True)
class DemoOptions:
    """``scoreflow demo``."""

    out: str = "scoreflow-demo"
    model: str = "mnist"
    data_dir: str | None = None
    num_samples: int = 64
    num_steps: int | None = None
    bpd_images: int = 200
    raw_weights: bool = False
    seed: int = 0
    no_progress: bool = False


@attrs.frozen(kw_only=True)
class DigitsDemoOptions:
    """``scoreflow digits-demo``."""

    out: str = "scoreflow-digits-demo"
    steps: int | None = None
    seed: int = 0
    no_progress: bool = False


@attrs.frozen(kw_only=True)
class OracleDemoOptions:
    """``scoreflow oracle-demo``."""

    out: str = "scoreflow-oracle-demo"
    num_samples: int = 2000
    num_steps: int = 500
    seed: int = 0


def add_commands(sub: Any) -> None:
    """Add ``demo``, ``digits-demo`` and ``oracle-demo`` to the subcommands ``sub``."""
    from scoreflow.cli.mnist_demo import DEMO_MODELS

    p = add_command(sub, "demo", DemoOptions, demo,
                    help="MNIST digits from the shipped mnist model with EM, PC and the ODE sampler, plus test "
                         "bits/dim (a few CPU minutes)")
    p.add_argument("--out", default="scoreflow-demo", help="output folder (default: %(default)s)")
    p.add_argument("--model", default="mnist", choices=tuple(DEMO_MODELS),
                   help="the shipped model (default: %(default)s; mnist-tutorial is the seed tutorial's run)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX test files (default: scoreflow's "
                                                    "data cache, downloaded once if absent)")
    p.add_argument("--num-samples", type=positive_int, default=64, help="samples per sampler (default: %(default)s)")
    p.add_argument("--num-steps", type=positive_int, default=None,
                   help="steps of the SDE samplers (default: 250 for mnist, the tutorial's 500 for the others)")
    p.add_argument("--bpd-images", type=int, default=200, help="test images for bits/dim, 0 to skip "
                                                                 "(default: %(default)s)")
    p.add_argument("--raw-weights", action="store_true", help="the raw weights instead of their EMA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p = add_command(sub, "digits-demo", DigitsDemoOptions, digits_demo,
                    help="train on the 8x8 digits for a few minutes, sample, evaluate, write a report")
    p.add_argument("--out", default="scoreflow-digits-demo", help="output folder (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the demo's budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p = add_command(sub, "oracle-demo", OracleDemoOptions, oracle_demo,
                    help="sample a 2-D Gaussian mixture with every sampler using its exact score")
    p.add_argument("--out", default="scoreflow-oracle-demo", help="output folder (default: %(default)s)")
    p.add_argument("--num-samples", type=positive_int, default=2000, help="samples per sampler")
    p.add_argument("--num-steps", type=positive_int, default=500, help="predictor steps")
    p.add_argument("--seed", type=int, default=0)


def demo(options: DemoOptions) -> int:
    """Sample the shipped model three ways, measure test bits/dim, write the report."""
    from scoreflow.cli.mnist_demo import run_mnist_demo

    if options.bpd_images < 0:
        raise ValueError(f"--bpd-images must be >= 0, got {options.bpd_images}")
    writable_folder(options.out)
    run_mnist_demo(options.out, data_dir=options.data_dir, num_samples=options.num_samples,
                   num_steps=options.num_steps, bpd_images=options.bpd_images, ema=not options.raw_weights,
                   seed=options.seed, progress=not options.no_progress, pretrained=options.model)
    print((Path(options.out) / "report.md").read_text())
    print(f"wrote {Path(options.out) / 'samples.png'} and {Path(options.out) / 'report.md'}")
    return 0


def digits_demo(options: DigitsDemoOptions) -> int:
    """Train on the 8x8 digits, sample, evaluate, write the report."""
    from scoreflow.cli.digits_demo import run_digits_demo

    run_digits_demo(options.out, steps=options.steps, seed=options.seed, progress=not options.no_progress)
    out = Path(options.out)
    print((out / "report.md").read_text())
    print(f"wrote {out / 'samples.png'}, {out / 'loss.png'} and {out / 'report.md'}")
    return 0


def oracle_demo(options: OracleDemoOptions) -> int:
    """Every sampler on the ring oracle; write the picture and the report."""
    from scoreflow.cli.oracle_demo import run_demo

    run_demo(Path(options.out), num_samples=options.num_samples, num_steps=options.num_steps, seed=options.seed)
    print((Path(options.out) / "report.md").read_text())
    print(f"wrote {Path(options.out) / 'samples.png'} and {Path(options.out) / 'report.md'}")
    return 0
