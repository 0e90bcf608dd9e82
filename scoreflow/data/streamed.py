"""Image files read from disk when a batch needs them: the ``folder`` dataset with ``stream=true``.

Training draws the same batches as from memory would give for its epoch order, through a torch ``DataLoader``
with worker processes: the batch of step ``k`` is a pure function of ``(seed, k)`` (:class:`StepBatches`), so
resuming needs no loader state and stays exact, and under ``torchrun`` each rank reads only its own share of
every batch (disjoint files). Memory does not grow with the folder: only the file list and the batches in flight
are held.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from scoreflow.data.base import TensorData
from scoreflow.data.images import read_image


class ImageFiles(torch.utils.data.Dataset):
    """``len(files)`` images, each read (and resized/cropped) by ``__getitem__`` as ``(C, H, W)`` float32 in
    ``[0, 1]``; ``sample_shape`` is the first file's shape after the transforms, and a file of another shape is an
    error naming it. ``workers`` is the training ``DataLoader``'s worker processes (0: read in the main process).
    """

    kind = "image"

    def __init__(self, files: list[Path], labels: torch.Tensor | None, *, channels: int, resize: int | None,
                 crop: int | None, levels: int, hflip: bool = False, workers: int = 0, name: str = "folder") -> None:
        if not files:
            raise ValueError(f"dataset {name!r}: no images in this split")
        if labels is not None and labels.shape != (len(files),):
            raise ValueError(f"labels must be ({len(files)},), got {tuple(labels.shape)}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be a number of processes >= 0, got {workers!r}")
        self.files, self.labels, self.channels = list(files), labels, channels
        self.resize, self.crop, self.levels, self.hflip, self.workers, self.name = (resize, crop, levels, hflip,
                                                                                   workers, name)
        self.sample_shape: tuple[int, ...] = tuple(self._read(0).shape)

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, i: int) -> torch.Tensor:

        arr = read_image(self.files[i], self.channels, self.resize, self.crop)
        x = torch.from_numpy(arr.copy())
        return x[None] if self.channels == 1 else x.permute(2, 0, 1).contiguous()

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self._read(int(i))
        if tuple(x.shape) != self.sample_shape:
            raise ValueError(f"{self.files[int(i)]}: size {tuple(x.shape[1:])} differs from "
                             f"{self.sample_shape[1:]}; all images must share one size (or give the dataset options "
                             "resize and crop)")
        return x

    def load(self, limit: int | None = None) -> TensorData:
        """The first ``limit`` images (all by default) read into memory, for the commands that measure a split."""
        n = len(self) if limit is None else min(limit, len(self))
        x = torch.stack([self[i] for i in range(n)])
        labels = None if self.labels is None else self.labels[:n]
        return TensorData(x, labels, "image", self.name, levels=self.levels, hflip=self.hflip)


def epoch_permutation(seed: int, n: int, epoch: int) -> torch.Tensor:
    """Epoch ``epoch``'s order of ``n`` training samples, seeded by ``(seed, epoch)``: the in-memory ``--epochs``
    order and the streamed one alike, so resuming needs no state."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1))


class StepBatches(torch.utils.data.Sampler):
    """Index batches for the training steps ``start, start + 1, ...``: step ``k`` takes positions
    ``[p B, (p + 1) B)`` of epoch ``e``'s permutation (``e, p = divmod(k, n // B)``, the permutation seeded by
    ``(seed, e)`` as the in-memory epoch order), and this rank keeps its slice ``[r B / w, (r + 1) B / w)``."""

    def __init__(self, n: int, batch_size: int, *, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} training images: an epoch would have no full "
                             "batch")
        self.n, self.batch_size, self.seed, self.start, self.rank, self.world = n, batch_size, seed, start, rank, world
        self.steps_per_epoch = n // batch_size

    def order(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s permutation of the ``n`` images (the last one is kept)."""
        if getattr(self, "_order", (None,))[0] != epoch:
            self._order = (epoch, epoch_permutation(self.seed, self.n, epoch))
        return self._order[1]

    def indices(self, step: int) -> torch.Tensor:
        """This rank's indices of step ``step``'s batch."""
        epoch, position = divmod(step, self.steps_per_epoch)
        batch = self.order(epoch)[position * self.batch_size:(position + 1) * self.batch_size]
        share = self.batch_size // self.world
        return batch[self.rank * share:(self.rank + 1) * share]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while True:
            yield self.indices(step).tolist()
            step += 1


def step_loader(data: ImageFiles, batch_size: int, *, seed: int, start: int, rank: int = 0, world: int = 1
                ) -> Iterator[torch.Tensor]:
    """This rank's images of the batches of steps ``start, start + 1, ...`` (see :class:`StepBatches`), read by
    ``data.workers`` worker processes."""
    sampler = StepBatches(len(data), batch_size, seed=seed, start=start, rank=rank, world=world)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=data.workers,
                                         persistent_workers=data.workers > 0)
    return iter(loader)
