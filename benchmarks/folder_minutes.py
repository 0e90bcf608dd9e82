"""What to expect after N minutes on a CPU: the own-images guide's recipe on a generated folder, measured in stages.

Generates ``--images`` RGB PNGs of coloured squares and discs of mixed sizes (30-43 px, as the guide's test folder),
trains the guide's command (``docs/guides/train-your-own-images.md``: resunet, EDM preconditioning and weighting,
resize/crop 32, flips) in stages of ``--stages`` total steps (each stage resumes the last), and after each stage runs
the guide's ``scoreflow evaluate`` (dpmpp_2m, 20 steps, autoencoder features) on ``--eval-samples`` samples.
Records the wall-clock minutes of training so far with each stage's figures.

Run (one thread, as the guide advises on a shared CPU)::

    OMP_NUM_THREADS=1 python -m benchmarks.folder_minutes --folder /tmp/shapes --run /tmp/shapes-run

It writes ``benchmarks/results/folder-minutes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ["--dataset", "folder", "--dataset-options", '{"resize": 32, "crop": 32, "flip": true}', "--model", "resunet",
          "--preconditioning", "edm", "--weighting", "edm", "--sigma-data", "0.5", "--sde-options",
          '{"sigma_min": 0.002, "sigma_max": 80}', "--dequantize", "--batch-size", "32", "--lr", "4e-4",
          "--warmup", "200", "--checkpoint-every", "500", "--no-progress"]


def make_folder(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` PNGs of one-colour squares and discs on black, 30-43 px, in ``folder`` (kept if already there)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) >= n:
        return
    rng = np.random.default_rng(seed)
    for i in range(n):
        size = int(rng.integers(30, 44))
        yy, xx = np.mgrid[:size, :size]
        disc = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2
        mask = disc if i % 2 else np.ones((size, size), bool)
        image = np.zeros((size, size, 3), np.uint8)
        image[mask] = rng.integers(0, 256, 3)
        Image.fromarray(image).save(folder / f"{i:05d}.png")


def run(args: argparse.Namespace, record: Any = None) -> dict[str, Any]:
    from scoreflow.cli import main

    folder, run_dir = Path(args.folder), Path(args.run)
    make_folder(folder, args.images)
    stages, trained_seconds, loads = [], 0.0, [os.getloadavg()[0]]
    for i, steps in enumerate(args.stages):
        began = time.perf_counter()
        argv = ["train", *RECIPE, "--data-dir", str(folder), "--steps", str(steps), "--out", str(run_dir)]
        if i:
            argv.append("--resume")
        assert main(argv) == 0, argv
        trained_seconds += time.perf_counter() - began
        quality_file = run_dir.parent / f"{run_dir.name}-quality-{steps}.json"
        assert main(["evaluate", "--checkpoint", str(run_dir), "--data-dir", str(folder), "--predictor", "dpmpp_2m",
                     "--corrector", "none", "--num-steps", "20", "--num-samples", str(args.eval_samples),
                     "--bpd-images", str(args.bpd_images), "--out", str(quality_file), "--no-progress"]) == 0
        quality = json.loads(quality_file.read_text())
        stage = {"steps": steps, "minutes_trained": round(trained_seconds / 60, 1), "quality": quality}
        stages.append(stage)
        loads.append(os.getloadavg()[0])
        print(json.dumps({"steps": steps, "minutes": stage["minutes_trained"],
                          "fd": quality.get("frechet_distance"), "kid": quality.get("kid")}), flush=True)
        result = {"images": args.images, "recipe": RECIPE, "threads": torch.get_num_threads(), "stages": stages,
                  "load_average": {"min": min(loads), "max": max(loads)}}
        if record is not None:  # after every stage, so a long run stopped early keeps what it measured
            record(result)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", required=True, help="where the generated PNGs go (reused if there)")
    parser.add_argument("--run", required=True, help="the training run folder (must not exist)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--stages", type=int, nargs="+", default=[500, 1500, 4000], help="total steps after each stage")
    parser.add_argument("--eval-samples", type=int, default=300)
    parser.add_argument("--bpd-images", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/folder-minutes.json"))
    args = parser.parse_args(argv)

    def record(result: dict[str, Any]) -> None:
        result["command"] = (f"python -m benchmarks.folder_minutes --folder DIR --run RUN --images {args.images} "
                             f"--stages {' '.join(map(str, args.stages))} --eval-samples {args.eval_samples} "
                             f"--bpd-images {args.bpd_images}")
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}", flush=True)

    run(args, record)


if __name__ == "__main__":
    main()
