"""``scoreflow sample`` and ``scoreflow tune-schedule``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import attrs
import torch

from scoreflow.cli.arguments import add_command, add_guided_sampling_arguments, json_object, positive_int
from scoreflow.cli.loading import open_model, to_unit_range, writable_folder
from scoreflow.cli.sampler_options import GuidedSamplingOptions, generate, sampling_plan
from scoreflow.device import resolve_device
from scoreflow.errors import SamplingInterrupted
from scoreflow.training import distributed as ddp


@attrs.frozen(kw_only=True)
class SampleOptions(GuidedSamplingOptions):
    """``scoreflow sample``: draws from a checkpoint into ``out``."""

    out: str = "samples"


@attrs.frozen(kw_only=True)
class TuneOptions:
    """``scoreflow tune-schedule``: grids for ``predictor`` at the ``nfe`` budgets."""

    checkpoint: str
    nfe: list[int]
    predictor: str = "ipndm"
    predictor_options: dict[str, Any] = attrs.field(factory=dict)
    trajectories: int = 128
    fine_steps: int = 128
    sweeps: int = 8
    eps: float | None = None
    out: str | None = None
    seed: int = 0
    device: str = "cpu"
    no_ema: bool = False
    no_progress: bool = False


def add_commands(sub: Any) -> None:
    """Add ``sample`` and ``tune-schedule`` to the subcommands ``sub``."""
    p = add_command(sub, "sample", SampleOptions, sample,
                    help="sample from a checkpoint; writes samples.png and samples.safetensors")
    add_guided_sampling_arguments(p)
    p.add_argument("--out", default="samples", help="output folder (default: %(default)s)")
    p = add_command(sub, "tune-schedule", TuneOptions, tune_schedule,
                    help="tune time grids for one sampler and NFE budgets on a model (stored with the run; sample "
                         "with --schedule tuned)")
    p.add_argument("--checkpoint", required=True, help="run folder, checkpoint folder or shipped model name")
    p.add_argument("--nfe", type=positive_int, nargs="+", required=True, help="budgets of score evaluations")
    p.add_argument("--predictor", default="ipndm", help="a deterministic (ODE) predictor (default: %(default)s)")
    p.add_argument("--predictor-options", type=json_object, default={}, help="JSON options for the predictor")
    p.add_argument("--trajectories", type=positive_int, default=128,
                   help="warm-up draws solved accurately (default: %(default)s)")
    p.add_argument("--fine-steps", type=positive_int, default=128, help="fine grid for the GITS start "
                                                                         "(default: %(default)s)")
    p.add_argument("--sweeps", type=positive_int, default=8, help="rounds of the search (default: %(default)s)")
    p.add_argument("--eps", type=float, default=None, help="final time (default: the SDE's)")
    p.add_argument("--out", default=None, help="JSON file (default: tuned-schedules.json in the run folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def sample(options: SampleOptions) -> int:
    """Draw ``num_samples`` samples and write samples.safetensors and samples.png (the finished blocks when
    interrupted)."""
    from safetensors.torch import save_file

    from scoreflow.pictures import save_samples_png

    ddp.init_from_env(options.device)
    opened = open_model(options.checkpoint, device=options.device, ema=not options.no_ema)
    model, sde, shape = opened.model, opened.sde, opened.data_shape
    plan = sampling_plan(options, sde, model)
    out = writable_folder(options.out) if ddp.is_main() else Path(options.out)

    def write(samples: torch.Tensor, nfe: int, note: str = "") -> None:
        samples = to_unit_range(samples, model)  # pictures and the saved tensor in [0, 1], scoreflow's data range
        save_file({"samples": samples.contiguous()}, str(out / "samples.safetensors"))
        save_samples_png(samples[:256], out / "samples.png", title=f"{len(samples)} samples{note}, NFE {nfe}")

    try:
        samples, nfe = generate(options, model, sde, shape, plan, interruptible=True)
    except SamplingInterrupted as stop:
        if len(stop.samples):
            write(stop.samples, stop.nfe, " (interrupted)")
            where = f"wrote the {len(stop.samples)} finished to {out / 'samples.safetensors'}"
        else:
            where = "no block had finished, nothing written"
        raise SamplingInterrupted(f"{stop}: {where}", stop.samples, stop.nfe, stop.exit_code) from None
    if ddp.is_main():
        write(samples, nfe)
        print(f"wrote {len(samples)} samples (NFE {nfe}) to {out / 'samples.safetensors'} and {out / 'samples.png'}")
    return 0


def tune_schedule(options: TuneOptions) -> int:
    """Tune the grids and store them with the run (or in ``out``), holding the run's lock while searching."""
    from scoreflow.errors import RunBusyError
    from scoreflow.sampling.tuning import TUNED_FILE, schedule_file
    from scoreflow.training.run_folder import RunLock

    resolve_device(options.device)  # before any work
    ddp.init_from_env(options.device)  # under torchrun the ranks share the warm-up draws; rank 0 alone writes
    given = options.checkpoint
    if options.out is None and not Path(given).is_dir():
        raise ValueError(f"{given!r} is a shipped model or a model source: give --out FILE.json for its tuned grids")
    target = str(Path(given) / TUNED_FILE) if options.out is None else options.out
    schedule_file(target)  # an existing --out must be a regular tuned-schedule file, checked before the work
    writable_folder(Path(target).parent)
    run = Path(target).parent
    # a run folder has one writer at a time: a live trainer (or another tune-schedule) on it is refused before the
    # search, and none can start until the grids are written
    with contextlib.ExitStack() as held:
        refused = None
        if ddp.is_main() and (run / "checkpoints").is_dir():
            try:
                held.enter_context(RunLock(run))
            except RunBusyError as exc:
                refused = exc
        if ddp.max_across_ranks(int(refused is not None)):  # every rank learns of it and stops before the search
            if refused is None:
                return 2  # rank 0 says why
            raise refused
        result, steps = _tune(options)
        if not ddp.is_main():
            return 0
        path = result.save(target)
    for n, grid in result.grids.items():
        print(f"{result.predictor}, {n} steps: end-point error {grid.error:.4g} against the ODE "
              f"(karras grid: {grid.karras_error:.4g})")
    hint = "" if Path(path).parent == Path(given) else f', "path": "{path}"'
    print(f"wrote {path} (teacher: {result.teacher_nfe} evaluations). Sample with: --predictor {result.predictor} "
          f"--schedule tuned --num-steps {steps[0]}" + (f" --schedule-options '{{{hint[2:]}}}'" if hint else ""))
    return 0


def _tune(options: TuneOptions) -> tuple[Any, list[int]]:
    """The tuned grids the options ask for (stored under the predictor's canonical name), and their step counts."""
    from scoreflow.plugins import get_host
    from scoreflow.sampling.tuning import GridSearch, steps_for_nfe
    from scoreflow.sampling.tuning import tune_schedule as tune

    search = GridSearch(eps=options.eps, fine_steps=options.fine_steps, sweeps=options.sweeps)  # before the model
    opened = open_model(options.checkpoint, device=options.device, ema=not options.no_ema)
    model, sde, shape = opened.model, opened.sde, opened.data_shape
    host = get_host()
    name = host.predictors.get(options.predictor).name  # grids are stored under the canonical name
    predictor = host.predictors.resolve(name, **options.predictor_options)
    steps = sorted({steps_for_nfe(predictor, n, sde, eps=options.eps) for n in options.nfe})
    generator = torch.Generator(options.device).manual_seed(options.seed)
    result = tune(model, sde, (options.trajectories, *shape), steps,
                  predictor=predictor if options.predictor_options else name, search=search,
                  generator=generator, progress=None if options.no_progress or not ddp.is_main() else print)
    return attrs.evolve(result, predictor=name), steps
