"""Peak memory and speed of training on an image folder read into memory against the same folder streamed.

Generates ``--images`` small RGB PNGs (random coloured squares; default 100,000 of 16x16) once, then for each
folder size in ``--sizes`` trains ``--steps`` steps of a tiny ``resunet`` in a fresh process per variant,
interleaved: the folder in memory (``stream`` off), streamed in the main process (``workers`` 0) and streamed with
``--workers`` worker processes. Each process reports its peak resident memory (``ru_maxrss``; the workers' own,
also reported, is read from ``RUSAGE_CHILDREN``), the time to open the dataset and the training steps per
second. Run::

    OMP_NUM_THREADS=1 python -m benchmarks.folder_streaming --folder /tmp/scoreflow-folder-bench

It writes ``benchmarks/results/folder-streaming.json``; ``docs/benchmarks.md`` quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("memory", "streamed", "streamed+workers")


def make_folder(folder: Path, n: int, size: int) -> None:
    """``n`` PNGs of ``size`` x ``size`` random coloured squares on black in one folder (no labels); existing
    files are kept."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        path = folder / f"{i:06d}.png"
        side = int(rng.integers(size // 4, size))
        colour = rng.integers(0, 256, 3)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        image = np.zeros((size, size, 3), np.uint8)
        top, left = rng.integers(0, size - side + 1, 2)
        image[top:top + side, left:left + side] = colour
        Image.fromarray(image).save(path)


def subset(folder: Path, n: int) -> Path:
    """A folder of symbolic links to the first ``n`` images (a smaller folder of the same images)."""
    out = folder.parent / f"{folder.name}-{n}"
    if not out.exists():
        files = sorted(folder.rglob("*.png"))[:n]
        for path in files:
            link = out / path.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return out


def child(folder: str, variant: str, steps: int, workers: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import torch

    import scoreflow as sf
    from scoreflow.training import TrainConfig, Trainer

    options = {} if variant == "memory" else {"stream": True, "workers": workers if variant.endswith("workers")
                                                                        else 0}
    start = time.perf_counter()
    data = sf.create("dataset", "folder", data_dir=folder, **options)
    opened = time.perf_counter() - start
    config = TrainConfig(dataset="folder", model="resunet", steps=steps, batch_size=32, dequantize=True,
                         dataset_options=options, log_every=10_000,
                         model_options={"channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                                        "attention": False})
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, out, data=data, progress=False)
        trainer.train_step()  # warm-up: workers started, allocator settled
        start = time.perf_counter()
        for _ in range(steps - 1):
            trainer.train_step()
        seconds = time.perf_counter() - start
        del trainer
    return {"variant": variant, "images": len(data), "open_seconds": round(opened, 2),
            "steps_per_second": round((steps - 1) / seconds, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "workers_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", required=True, help="where the generated images go (reused when present)")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="folder sizes to measure")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/folder-streaming.json"))
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.steps, args.workers)))
        return
    folder = Path(args.folder)
    start = time.perf_counter()
    make_folder(folder, args.images, args.size)
    print(f"{args.images} images in {folder} ({time.perf_counter() - start:.0f} s)", flush=True)
    rows = []
    load = [os.getloadavg()[0]]
    for n in args.sizes:
        where = folder if n >= args.images else subset(folder, n)
        for variant in VARIANTS:  # one fresh process each, interleaved per size
            done = subprocess.run([sys.executable, "-m", "benchmarks.folder_streaming", "--folder", str(folder),
                                   "--child", str(where), variant, "--steps", str(args.steps), "--workers",
                                   str(args.workers)], capture_output=True, text=True, check=True, cwd=ROOT)
            row = {"folder_images": n, **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            load.append(os.getloadavg()[0])
            print(row, flush=True)
    result = {"command": "python -m benchmarks.folder_streaming " + " ".join(sys.argv[1:] if argv is None else argv),
              "image_size": args.size, "steps": args.steps, "batch_size": 32, "rows": rows,
              "load_average": {"min": min(load), "max": max(load)}, "cpus": os.cpu_count()}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
