"""The guides' command lines, run on small generated inputs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from scoreflow.cli import main

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "train-your-own-images.md"


def _commands(page: Path) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)
    return [shlex.split(line) for block in blocks for line in block.strip().splitlines() if line.strip()]


def test_train_your_own_images_commands_run(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    for i in range(24):  # coloured squares and discs of mixed sizes, as the guide's folder
        size = int(rng.integers(30, 44))
        yy, xx = np.mgrid[:size, :size]
        mask = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2 if i % 2 else np.ones((size, size), bool)
        image = np.zeros((size, size, 3), np.uint8)
        image[mask] = rng.integers(0, 256, 3)
        Image.fromarray(image).save(shapes / f"{i:04d}.png")
    monkeypatch.chdir(tmp_path)
    commands = _commands(GUIDE)
    assert [c[1] for c in commands] == ["train", "sample", "calibrate", "likelihood", "evaluate"]
    for argv in commands:
        assert argv[0] == "scoreflow"
        argv = argv[1:]
        if argv[0] == "train":  # the guide's run, shortened
            argv[argv.index("--steps") + 1] = "3"
            argv += ["--model-options", '{"channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1}']
        if argv[0] == "sample":
            argv[argv.index("--num-samples") + 1] = "4"
        if argv[0] == "likelihood":
            argv[argv.index("--max-samples") + 1] = "2"
        if argv[0] == "evaluate":
            argv[argv.index("--num-samples") + 1] = "4"
            argv[argv.index("--bpd-images") + 1] = "2"
        assert main([*argv, "--no-progress"] if argv[0] != "calibrate" else argv) == 0, argv
    assert (tmp_path / "shapes-samples" / "samples.png").is_file()
    assert (tmp_path / "calibration" / "calibration.png").is_file() and (tmp_path / "shapes-bpd.json").is_file()
    quality = json.loads((tmp_path / "shapes-quality.json").read_text())
    assert quality["features"] == "autoencoder" and "uniform_noise" in quality["references"]
