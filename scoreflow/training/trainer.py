"""The training loop: denoising score matching with EMA, checkpoints, resume and DDP."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import time
import types
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import torch
from torch.optim.swa_utils import AveragedModel

from scoreflow.data.base import TensorData, dequantize
from scoreflow.data.sources import SAMPLE_SHAPES
from scoreflow.data.streamed import ImageFiles, epoch_permutation, step_loader
from scoreflow.models.base import ScoreNet
from scoreflow.models.embedding import NO_CLASS
from scoreflow.models.preconditioning import EDMPreconditioner
from scoreflow.registry import check_instance
from scoreflow.sde.base import SDE
from scoreflow.device import resolve_device
from scoreflow.training import distributed as ddp
from scoreflow.errors import TrainingDivergedError, TrainingInterrupted
from scoreflow.pictures import save_loss_png
from scoreflow.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scoreflow.training.config import TrainConfig
from scoreflow.training.losses import dsm_loss
from scoreflow.training.weighting import LossWeighting
from scoreflow.training.run_folder import RunLock, existing_step, prepare_run_folder, refuse_existing_run
from scoreflow.validators import MAX_PARAMETERS


# Config fields a resumed run may change: how long it runs and how it logs and keeps checkpoints.
RESUMABLE_CHANGES = ("steps", "epochs", "checkpoint_every", "log_every", "keep_last")


@attrs.frozen
class TrainResult:
    """What a run produced: its folder, last step, loss history, per-epoch losses and throughput."""

    out: Path
    step: int
    losses: list[tuple[int, float]]
    images_per_second: float
    epoch_losses: list[tuple[int, float]] = attrs.field(factory=list)


def build_components(config: TrainConfig, data: TensorData, *, host=None, sde: SDE | None = None):
    """The SDE and score network a config describes (network initialised from ``config.seed``; for ``sde`` when
    given, else the config's)."""
    from scoreflow.plugins import get_host

    host = host or get_host()
    sde = sde if sde is not None else host.create("sde", config.sde, **config.sde_options)
    shape = data.sample_shape
    shape_opts: dict[str, Any] = (
        {"image_size": shape[-1], "in_channels": shape[0]} if data.kind == "image" else {"dim": shape[0]}
    )
    torch.manual_seed(config.seed)
    model = host.create("score_net", config.model, sde=sde, **{**shape_opts, **config.model_options})
    if config.preconditioning == "edm":
        model = EDMPreconditioner(model, sde, config.sigma_data)
    return sde, model


#: Parts of a network that start so that it computes what it does without them; ``init_from`` may come from a
#: network that lacks them.
ZERO_STARTING_PARTS = ("class_embed", "modulation")


def with_data_classes(config: TrainConfig, data: TensorData | ImageFiles) -> TrainConfig:
    """``config`` with its network's ``num_classes`` filled from ``data``'s labels (a class-conditional run),
    refusing data without labels or a ``num_classes`` too small for them."""
    labels = getattr(data, "labels", None)
    if labels is None:
        raise ValueError(f"class_dropout trains a class-conditional network, but dataset {config.dataset!r} has no "
                         "labels (labelled: mnist, fashion_mnist, digits, the toy mixtures, a folder with one "
                         "subfolder per class)")
    if isinstance(data, ImageFiles):
        raise ValueError("class-conditional training reads its labels from an in-memory dataset; a streamed folder "
                         "is not supported yet (leave out the dataset option stream)")
    needed = int(labels.max()) + 1
    given = config.model_options.get("num_classes", needed)
    if isinstance(given, bool) or not isinstance(given, int) or given < needed:
        raise ValueError(f"model_options num_classes must be an integer >= {needed} (the dataset's labels run "
                         f"0..{needed - 1}), got {given!r}")
    return attrs.evolve(config, model_options={**config.model_options, "num_classes": given})


def make_weighting(config: TrainConfig, host=None) -> LossWeighting:
    """The config's loss weighting, unbound: a built-in with its options from the config's own fields
    (``importance_sampling``; ``p_mean``, ``p_std``, ``sigma_data``), any other registered ``"weighting"`` with
    ``weighting_options``."""
    from scoreflow.training.weighting import EDMWeighting, LikelihoodWeighting, Sigma2Weighting

    builtin_options = {"sigma2": {}, "likelihood": {"importance_sampling": config.importance_sampling},
                       "edm": {"p_mean": config.p_mean, "p_std": config.p_std, "sigma_data": config.sigma_data}}
    name = config.weighting
    if name in builtin_options:
        if config.weighting_options:
            raise ValueError(f"weighting_options apply to plugin weightings; {name!r} takes its options from the "
                             "training options (importance_sampling; p_mean, p_std, sigma_data)")
        if host is None:  # every component given as an instance: no plugin host is consulted
            factory = {"sigma2": Sigma2Weighting, "likelihood": LikelihoodWeighting, "edm": EDMWeighting}[name]
            return factory(**builtin_options[name])
        options = builtin_options[name]
    else:
        options = dict(config.weighting_options)
    from scoreflow.plugins import get_host

    return check_instance("weighting", (host or get_host()).create("weighting", name, **options), LossWeighting)


#: Prefix of an ``init_from`` value that names a shipped pretrained model instead of a path.
PRETRAINED_PREFIX = "pretrained:"


def initial_weights(source: str, *, host=None) -> tuple[dict[str, torch.Tensor], Path]:
    """The network weights ``init_from`` names and the checkpoint folder they came from: the EMA weights of a
    checkpoint (or run folder, or ``pretrained:NAME``, verified by its sha256) where it has them, else its raw
    weights."""
    if source.startswith(PRETRAINED_PREFIX):
        from scoreflow.plugins import get_host

        # the registered model checks every file's sha256 (PretrainedModel.verify) before its folder is read
        folder: str | Path = (host or get_host()).create("pretrained", source.removeprefix(PRETRAINED_PREFIX)).verify()
    else:
        folder = Path(source).expanduser()
    ckpt = load_checkpoint(folder)
    return (ckpt.model if ckpt.ema is None else ema_network_weights(ckpt.ema)), ckpt.path


def ema_network_weights(ema_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The averaged network's own weights from an ``AveragedModel`` state (its ``module.`` entries)."""
    return {k.removeprefix("module."): v for k, v in ema_state.items() if k.startswith("module.")}


def versions() -> dict[str, str]:
    """Versions of the packages a checkpoint depends on."""
    out = {}
    for name in ("scoreflow", "torch", "torchsde", "torchdiffeq", "safetensors"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def ema_with_warmup(decay: float):
    """EMA update whose decay ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates.

    Without the ramp a short run's average keeps ``decay^steps`` of the random
    initial weights (22% after 1500 steps at 0.999), which ruins samples.
    """

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        # in place over all tensors at once (AveragedModel's multi_avg_fn): the per-tensor form built two
        # temporaries per tensor and copied the result back, 1.1 ms of a 47 ms step at batch 32
        if averaged and not averaged[0].is_floating_point():  # a group of integer buffers (counters): follow
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)
            return
        torch._foreach_lerp_(averaged, current, 1 - d)

    return update


#: Devices with a fused (single-kernel) Adam/AdamW step in torch.
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def make_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    """The config's Adam or AdamW, fused into one kernel over all parameters where torch has one.

    The per-tensor default loops over the network's tensors in Python: 2.1-2.5 ms of a 46 ms batch-32 step of
    the tutorial U-Net on CPU, against 0.5-0.9 ms fused (5.4 and 2.7 ms with ``OMP_WAIT_POLICY=PASSIVE``); the
    update is the same up to rounding.
    """
    params = list(parameters)
    opt_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    fused = bool(params) and all(p.device.type in FUSED_OPTIMIZER_DEVICES and p.is_floating_point() for p in params)
    return opt_cls(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


class Trainer:
    """Trains the score network a :class:`TrainConfig` describes, writing into ``out``.

    The dataset, SDE and network come from the config's registered names, or are given as instances
    (``data=``, ``sde=``, ``model=``); with all three given no plugin host is consulted. The checkpoint records
    the config, from which :func:`load_trained` rebuilds the network, so instances should be what the config
    names (as :func:`build_components` makes them); the weights are loaded strictly, so a network of another
    shape is refused when loaded.

    With torch.distributed initialised (``torchrun``), each rank takes its slice of the
    same global batch (indices, times and noise are drawn identically on every rank), so
    the averaged gradient equals single-process training on that batch; rank 0 writes.
    """

    def __init__(self, config: TrainConfig, out: str | Path, *, data: TensorData | None = None,
                 sde: SDE | None = None, model: ScoreNet | None = None, host=None, progress: bool = True) -> None:
        self.config = config
        self.out = Path(out)
        self.progress = progress
        self.rank, self.world = ddp.world()
        if config.batch_size % self.world:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the world size {self.world}")
        self.device = resolve_device(config.device)
        if host is None and (data is None or sde is None or model is None):  # a name to resolve: the edge
            from scoreflow.plugins import get_host

            host = get_host()
        self.host = host
        if data is None:
            data = host.create("dataset", config.dataset, split="train", data_dir=config.data_dir,
                               **config.dataset_options)
        self.data = check_instance("dataset", data, (TensorData, ImageFiles))
        if config.class_dropout is not None:
            self.config = config = with_data_classes(config, self.data)
        self._stream = None  # the streamed images of the coming steps (an ImageFiles dataset), opened on first use
        if sde is None:
            sde = host.create("sde", config.sde, **config.sde_options)
        if model is None:
            _, model = build_components(config, self.data, host=host, sde=sde)
        self.sde = check_instance("sde", sde, SDE)
        self.model = check_instance("score_net", model, ScoreNet)
        if config.dequantize and self.data.levels is None:
            raise ValueError(f"dequantize applies to quantized data; dataset {config.dataset!r} is continuous "
                             "(it declares no quantization levels): pass --no-dequantize")
        self.model.to(self.device)
        self.ema = AveragedModel(self.model, multi_avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
        self.optimizer = make_optimizer(config, self.model.parameters())
        self.generator = torch.Generator().manual_seed(config.seed)
        self.weighting = make_weighting(config, host).bind(self.sde, config.eps)
        if config.epochs is not None:
            self.steps_per_epoch = len(self.data) // config.batch_size
            if self.steps_per_epoch == 0:
                raise ValueError(f"batch_size {config.batch_size} exceeds the {len(self.data)} training samples of "
                                 f"dataset {config.dataset!r}: an epoch would have no full batch")
            self.total_steps = config.epochs * self.steps_per_epoch
        else:
            self.steps_per_epoch = 0
            self.total_steps = config.steps
        self._permutation: tuple[int, torch.Tensor] | None = None
        self.step = 0
        self.losses: list[tuple[int, float]] = []
        self.epoch_losses: list[tuple[int, float]] = []
        self._epoch_sum, self._epoch_count = 0.0, 0
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)

    # -- state ---------------------------------------------------------------
    def save(self) -> Path | None:
        """Checkpoint the current state (rank 0 only)."""
        path = None
        if ddp.is_main():
            meta = {"config": self.config.to_dict(), "sde": repr(self.sde), "versions": versions(),
                    "losses": self.losses, "epoch_losses": self.epoch_losses,
                    "epoch_partial": [self._epoch_sum, self._epoch_count], "data_shape": list(self.data.sample_shape), "data_kind": self.data.kind,
                    "data_levels": self.data.levels}
            path = save_checkpoint(self.out, self.step, model=self.model, ema=self.ema, optimizer=self.optimizer,
                                   rng={"generator": self.generator.get_state()}, meta=meta,
                                   keep_last=self.config.keep_last)
        ddp.barrier()
        return path

    def _restore_checked(self) -> None:
        """:meth:`restore` the run's latest checkpoint, refusing one already past this run's length."""
        if existing_step(self.out) is None:
            raise CheckpointError(f"--resume: {self.out} holds no run to resume (no checkpoints/latest there)")
        self.restore()
        if self.step > self.total_steps:
            raise ValueError(f"cannot resume {self.out} to {self.total_steps} steps: it is already at step "
                             f"{self.step}; ask for at least {self.step} (--steps or --epochs)")

    def restore(self, path: str | Path | None = None) -> None:
        """Continue from ``path`` (default: this run's latest checkpoint)."""
        ckpt = load_checkpoint(path or self.out)
        saved = ckpt.meta["config"]
        mine = self.config.to_dict()
        changed = {k for k in saved if k not in RESUMABLE_CHANGES and saved[k] != mine.get(k)}
        if changed:
            raise CheckpointError(f"cannot resume: the config differs from the checkpoint's in {sorted(changed)}")
        self.model.load_state_dict(ckpt.model)
        if ckpt.ema is not None:
            self.ema.load_state_dict(ckpt.ema)
        if ckpt.optimizer_error:
            raise CheckpointError(f"cannot resume: {ckpt.optimizer_error}")
        if ckpt.optimizer is not None:
            try:
                self.optimizer.load_state_dict(ckpt.optimizer)
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(f"cannot resume: the optimizer state of {ckpt.path} does not fit this "
                                      f"run's parameters ({exc})") from exc
        if "generator" in ckpt.rng:
            try:
                self.generator.set_state(ckpt.rng["generator"])
            except (RuntimeError, TypeError, ValueError) as exc:
                raise CheckpointError(f"cannot resume: the random-number state in {ckpt.path} is not a CPU "
                                      f"generator's ({exc}); resume from another checkpoint") from exc
        self.step = int(ckpt.meta["step"])
        self.losses = [tuple(x) for x in ckpt.meta.get("losses", [])]
        self.epoch_losses = [tuple(x) for x in ckpt.meta.get("epoch_losses", [])]
        self._epoch_sum, self._epoch_count = ckpt.meta.get("epoch_partial", [0.0, 0])

    def initialise_from(self, source: str) -> None:
        """Load the starting weights of a fine-tuning run into the network and its EMA (see
        :attr:`TrainConfig.init_from`); the optimizer and the step count are left fresh.

        A network may start from one that lacks only its conditioning additions (a class embedding, whose rows
        start at zero, and ``resunet``'s ``adaptive_norm`` projections, which start at zero): those keep their
        initial values, so the run starts as exactly the source, e.g. a class-conditional model from an
        unconditional one."""
        weights, where = initial_weights(source, host=self.host)
        own = self.model.state_dict()
        missing = [k for k in own if k not in weights]
        if missing and all(any(f".{part}." in f".{k}" for part in ZERO_STARTING_PARTS) for k in missing):
            weights = {**weights, **{k: own[k] for k in missing}}
        try:
            self.model.load_state_dict(weights)
            self.ema.module.load_state_dict(weights)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())  # torch's message spans lines: one line, shortened
            raise CheckpointError(f"init_from {source!r}: the weights of {where} do not fit this run's network; "
                                  f"its model, model_options and preconditioning must match ({detail[:300]})") from exc

    # -- the loop -------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This rank's share of the step's batch: data, times, noise and (class-conditional runs) labels, each
        dropped to ``NO_CLASS`` with probability ``class_dropout``. Every random draw is made for the whole
        batch from the run's generator (identically on every rank), so resume and any world size see the same
        batch; streamed images are read for this rank's share only."""
        cfg, g = self.config, self.generator
        share = cfg.batch_size // self.world
        sl = slice(self.rank * share, (self.rank + 1) * share)
        shape = (cfg.batch_size, *self.data.sample_shape)
        if isinstance(self.data, ImageFiles):  # the epoch order of StepBatches, read by the loader's workers
            if self._stream is None:
                self._stream = step_loader(self.data, cfg.batch_size, seed=cfg.seed, start=self.step, rank=self.rank,
                                           world=self.world)
            x = next(self._stream)
        else:
            if cfg.epochs is not None:
                epoch, position = divmod(self.step, self.steps_per_epoch)
                idx = self._epoch_order(epoch)[position * cfg.batch_size:(position + 1) * cfg.batch_size]
            else:
                idx = torch.randint(0, len(self.data), (cfg.batch_size,), generator=g)
            x = self.data.x[idx][sl]
        if self.data.hflip:  # drawn from the run's generator, so resume stays exact
            flips = (torch.rand(cfg.batch_size, generator=g) < 0.5)[sl]
            x = torch.where(flips.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)
        if cfg.dequantize:
            x = dequantize(x, levels=self.data.levels, u=torch.rand(shape, generator=g, dtype=x.dtype)[sl])
        t = self.weighting.sample_times(cfg.batch_size, g).to(x.dtype)
        z = torch.randn(shape, generator=g, dtype=x.dtype)
        labels = None
        if cfg.class_dropout is not None:
            dropped = torch.rand(cfg.batch_size, generator=g) < cfg.class_dropout
            labels = torch.where(dropped, torch.full_like(self.data.labels[idx], NO_CLASS), self.data.labels[idx])
            labels = labels[sl].to(self.device)
        return x.to(self.device), t[sl].to(self.device), z[sl].to(self.device), labels

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """The data order of ``epoch``: a permutation seeded by (seed, epoch), so resume needs no state."""
        if self._permutation is None or self._permutation[0] != epoch:
            self._permutation = (epoch, epoch_permutation(self.config.seed, len(self.data), epoch))
        return self._permutation[1]

    def _end_of_epoch(self, loss: float) -> None:
        """Accumulate the epoch's average loss; at its last step record and print it as the tutorial does."""
        self._epoch_sum += loss
        self._epoch_count += 1
        if self.steps_per_epoch and self.step % self.steps_per_epoch == 0:
            epoch = self.step // self.steps_per_epoch - 1
            average = ddp.mean_across_ranks(self._epoch_sum / self._epoch_count)
            self.epoch_losses.append((epoch, average))
            self._epoch_sum, self._epoch_count = 0.0, 0
            if ddp.is_main():
                from tqdm.auto import tqdm

                tqdm.write(f"epoch: {epoch}, average loss: {average}")

    #: A loss this many times the first step's (or non-finite) means training diverged.
    DIVERGENCE_FACTOR = 1e4

    def _check_divergence(self, loss: float) -> None:
        """Stop with the step and a hint that fits the run's settings when the loss blows up."""
        if self._first_loss is None and math.isfinite(loss):
            self._first_loss = loss
        reference = self._first_loss if self._first_loss is not None else float("inf")
        if math.isfinite(loss) and loss <= self.DIVERGENCE_FACTOR * max(reference, 1.0):
            return
        cfg = self.config
        hint = (f"lower --lr (now {cfg.lr:g}); gradient clipping at {cfg.grad_clip:g} is already on"
                if cfg.grad_clip is not None else f"lower --lr (now {cfg.lr:g}) or clip gradients (--grad-clip 1.0)")
        what = "non-finite" if not math.isfinite(loss) else f"{loss:.3g}, over {self.DIVERGENCE_FACTOR:g} times the first step's"
        raise TrainingDivergedError(f"training diverged at step {self.step}: the loss is {what}; {hint}. "
                                    "The last checkpoint is kept.")

    _first_loss: float | None = None

    def train_step(self) -> float:
        """One optimisation step on the next global batch; returns the mean loss."""
        cfg = self.config
        x, t, z, labels = self._batch()
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if cfg.amp
                    else contextlib.nullcontext())
        with autocast:
            loss = dsm_loss(self.net, self.sde, x, t, z, weighting=self.weighting, class_labels=labels).mean()
        self._check_divergence(float(loss.detach()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        scale = min(1.0, (self.step + 1) / cfg.warmup) if cfg.warmup else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * scale
        self.optimizer.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        return float(loss.detach())

    def run(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Train ``config.epochs`` epochs (or ``config.steps`` steps); checkpoint every ``checkpoint_every``
        steps and at the end.

        The run folder is locked while training (a second writer is refused); a folder that already holds
        a run needs ``resume`` (continue it) or ``overwrite`` (replace it). SIGINT and SIGTERM save a
        checkpoint of the current step and raise :class:`~scoreflow.errors.TrainingInterrupted`.
        """
        if resume and overwrite:
            raise ValueError("--resume and --overwrite contradict each other: --resume continues the run in "
                             f"{self.out}, --overwrite replaces it; pass one")
        lock = RunLock(self.out) if ddp.is_main() else None
        if lock is not None:
            refuse_existing_run(self.out, resume=resume, overwrite=overwrite)  # before the lock touches anything
        # what can be refused is refused before the lock or the folder is touched: a run to resume that is not
        # there or does not fit, a source to start from that is missing or does not fit
        if resume:
            self._restore_checked()
        elif self.config.init_from is not None:
            self.initialise_from(self.config.init_from)
        if lock is not None:
            lock.acquire()
        try:
            if ddp.is_main():
                prepare_run_folder(self.out, resume=resume, overwrite=overwrite)
            ddp.barrier()
            if resume and existing_step(self.out) != self.step:  # another writer saved before the lock was ours
                self._restore_checked()
            with _signals_stop(self):
                return self._loop()
        finally:
            self._close_stream()
            if lock is not None:
                lock.release()

    def _close_stream(self) -> None:
        """Stop the streamed images' worker processes now, not whenever the garbage collector meets the loader's
        iterator: from inside an unrelated later computation its shutdown waited for the workers for up to a minute
        (seen in the test suite). A later ``run`` opens a new stream at its step."""
        stream, self._stream = self._stream, None
        shutdown = getattr(stream, "_shutdown_workers", None)  # torch's multi-process iterator; none with 0 workers
        if shutdown is not None:
            shutdown()

    def _loop(self) -> TrainResult:
        from tqdm.auto import tqdm

        cfg = self.config
        if ddp.is_main():
            self.out.mkdir(parents=True, exist_ok=True)
        total = self.total_steps
        threads = torch.get_num_threads()  # said on the bar: too many threads on a busy CPU is the usual slowness
        bar = tqdm(total=total, initial=self.step, desc=f"training ({threads} thread{'s' * (threads != 1)})", disable=not (self.progress and ddp.is_main()),
                   dynamic_ncols=True)
        start, start_step, window = time.perf_counter(), self.step, []
        while self.step < total:
            window.append(self.train_step())
            self._end_of_epoch(window[-1])
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == total:
                loss = ddp.mean_across_ranks(sum(window) / len(window))
                self.losses.append((self.step, loss))
                window = []
                rate = (self.step - start_step) * cfg.batch_size / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{loss:.2f}", img_s=f"{rate:.0f}")
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < total:
                self.save()
            signum = ddp.max_across_ranks(self._stop_signal or 0)  # every rank stops after the same step
            if signum:
                bar.close()
                self._interrupted(signum)
        bar.close()
        elapsed = time.perf_counter() - start
        self.save()
        if ddp.is_main():
            save_loss_png(self.losses, self.out / "loss.png")
        rate = (self.step - start_step) * cfg.batch_size / elapsed if elapsed > 0 else 0.0
        return TrainResult(self.out, self.step, list(self.losses), rate, list(self.epoch_losses))


    _stop_signal: int | None = None

    def _interrupted(self, signum: int) -> None:
        """Save the current step and stop (called on every rank after the step during which a signal arrived
        on any of them)."""
        import signal

        self.save()
        name = signal.Signals(signum).name
        raise TrainingInterrupted(
            f"{name} at step {self.step}: saved a checkpoint; continue with the same command and --resume",
            128 + signum)


@contextlib.contextmanager
def _signals_stop(trainer: Trainer):
    """While training, SIGINT/SIGTERM ask the loop to save and stop after the current step (main thread).
    Under torchrun the launcher forwards the signal to every worker; the ranks agree after each step (a
    max over ranks), so all stop after the same step and rank 0 saves it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ask_to_stop(signum, frame):
        trainer._stop_signal = signum

    previous = {s: signal.signal(s, ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        trainer._stop_signal = None


#: Bounds a checkpoint's metadata must respect before anything is built from it.
MAX_SAMPLE_DIM = 4096
MAX_SAMPLE_ELEMENTS = 1 << 24


def checked_data_shape(meta: dict[str, Any], where: Any) -> tuple[tuple[int, ...], str]:
    """``(data_shape, data_kind)`` of a checkpoint's metadata, refused unless plausible and bounded."""
    kind, shape = meta.get("data_kind"), meta.get("data_shape")
    rank = {"image": 3, "vector": 1}.get(kind)
    if rank is None:
        raise CheckpointError(f"{where}: data_kind must be 'image' or 'vector', got {kind!r}")
    if (not isinstance(shape, list) or len(shape) != rank
            or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_SAMPLE_DIM for d in shape)
            or math.prod(shape) > MAX_SAMPLE_ELEMENTS):
        raise CheckpointError(f"{where}: data_shape must be {rank} integer(s) in [1, {MAX_SAMPLE_DIM}] with at most "
                              f"{MAX_SAMPLE_ELEMENTS} elements for {kind} data, got {shape!r}")
    return tuple(shape), kind


class LoadedModel(NamedTuple):
    """What :func:`load_trained` rebuilds: unpacks as ``model, sde, config = load_trained(run)``."""

    model: ScoreNet
    sde: SDE
    config: TrainConfig


def load_trained(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu",
                 host=None) -> LoadedModel:
    """Rebuild ``(model, sde, config)`` from a checkpoint (EMA weights by default).

    The metadata is validated first: the config's option types, a bounded ``data_shape``, and a network
    whose parameter count (measured on PyTorch's ``meta`` device, which allocates nothing) is at most
    :data:`MAX_PARAMETERS`. ``ema=True`` on a checkpoint without EMA weights (an imported one) is an error
    naming ``--no-ema``; nothing falls back silently.
    """
    from scoreflow.plugins import get_host

    host = host or get_host()
    ckpt = load_checkpoint(path)
    meta = ckpt.meta
    try:
        config = TrainConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt.path}: invalid metadata ({exc})") from exc
    shape, kind = checked_data_shape(meta, ckpt.path)
    fixed = SAMPLE_SHAPES.get(config.dataset)
    if fixed is not None and shape != fixed:
        raise CheckpointError(f"{ckpt.path}: data_shape {list(shape)} does not fit the run's dataset "
                              f"{config.dataset!r}, whose samples have shape {list(fixed)}")
    if ema and ckpt.ema is None:
        raise CheckpointError(f"{ckpt.path}: has no EMA weights (an imported or EMA-less checkpoint); "
                              "load the raw weights with ema=False (--no-ema)")
    with torch.device("meta"):
        shape_only = types.SimpleNamespace(sample_shape=tuple(shape), kind=kind)  # what build_components reads
        try:
            _, probe = build_components(config, shape_only, host=host)
        except (TypeError, ValueError, RuntimeError, NotImplementedError) as exc:
            raise CheckpointError(f"{ckpt.path}: its config does not build a network ({exc})") from exc
    n_params = sum(p.numel() for p in probe.parameters())
    if n_params > MAX_PARAMETERS:
        raise CheckpointError(f"{ckpt.path}: its model_options ask for {n_params:,} parameters, more than "
                              f"{MAX_PARAMETERS:,}; refusing to allocate them")
    fake = TensorData(torch.zeros(1, *shape), None, kind)
    sde, model = build_components(config, fake, host=host)
    weights = ckpt.model
    if ema:
        weights = ema_network_weights(ckpt.ema)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{ckpt.path}: weights do not fit the model ({exc})") from exc
    return LoadedModel(model.to(device).eval(), sde, config)
