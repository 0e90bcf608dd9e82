"""The typed options of the sampling commands and the sampler they build."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from scoreflow.evaluation.runs import GatheredSamples
    from scoreflow.sampling.protocol import SamplerProtocol


@attrs.frozen(kw_only=True, slots=False)  # a base of classes with several bases
class SamplerOptions:
    """What builds a predictor-corrector (or whole-trajectory) sampler, and where it runs."""

    checkpoint: str
    predictor: str = "euler"
    corrector: str | None = "langevin"
    predictor_options: dict[str, Any] = attrs.field(factory=dict)
    num_steps: int = 500
    snr: float = 0.15
    eps: float | None = None
    schedule: str | None = None
    schedule_options: dict[str, Any] = attrs.field(factory=dict)
    start_time: float | None = None
    n_steps: int = 1
    resample: int = 0
    resample_jump: int | None = None
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    no_ema: bool = False
    no_progress: bool = False
    data_dir: str | None = None


@attrs.frozen(kw_only=True)
class ODESamplerOptions(SamplerOptions):
    """:class:`SamplerOptions`, or probability-flow sampling with ``ode_solver``."""

    ode_solver: str | None = None
    ode_denoise: bool = False
    solver_options: dict[str, Any] = attrs.field(factory=dict)
    rtol: float = 1e-5
    atol: float = 1e-5


@attrs.frozen(kw_only=True)
class GuidedSamplingOptions(ODESamplerOptions):
    """``num_samples`` draws, optionally guided toward ``class_label``."""

    num_samples: int = 64
    class_label: int | None = None
    classifier: str | None = None
    guidance_scale: float | None = None


def build_sampler(options: SamplerOptions, **condition: Any) -> SamplerProtocol:
    """The :func:`~scoreflow.Sampler` of the sampling options; ``condition``: its condition keywords."""
    from scoreflow.sampling.sampler import Sampler

    corrector = None if options.corrector in (None, "none") else options.corrector
    extra: dict[str, Any] = {} if options.eps is None else {"eps": options.eps}
    if options.start_time is not None:
        extra["start_time"] = options.start_time
    if options.schedule is not None or options.schedule_options:
        schedule_options = dict(options.schedule_options)
        if options.schedule == "tuned":  # the grids `scoreflow tune-schedule` stored with this run, for this predictor
            from scoreflow.plugins import get_host
            from scoreflow.sampling.sampler import canonical_predictor_name

            schedule_options.setdefault("path", options.checkpoint)
            schedule_options.setdefault("predictor", canonical_predictor_name(options.predictor, host=get_host()))
        extra.update(schedule=options.schedule, schedule_options=schedule_options)
    if options.resample_jump is not None and not options.resample:
        raise ValueError(f"--resample-jump {options.resample_jump} sets the block length of RePaint resampling; give "
                         "--resample N (the repeats) too")
    return Sampler(predictor=options.predictor, corrector=corrector, num_steps=options.num_steps, snr=options.snr,
                   n_steps=options.n_steps, predictor_options=options.predictor_options, resample=options.resample,
                   resample_jump=1 if options.resample_jump is None else options.resample_jump, **extra, **condition)


def sampling_plan(options: GuidedSamplingOptions, sde: Any, model: Any) -> SamplerProtocol:
    """The sampler (predictor-corrector or probability-flow) the options ask for, checked against ``sde`` and
    ``model`` before any sampling."""
    from scoreflow.cli.guidance import guidance_condition
    from scoreflow.flow.probability_flow import ProbabilityFlowSampler

    condition = guidance_condition(options, sde, model)  # classifier guidance with --ode-solver is refused here
    if options.ode_solver and (options.schedule is not None or options.predictor_options or options.resample):
        raise ValueError("--schedule, --predictor-options and --resample apply to predictor-corrector sampling, not to "
                         f"--ode-solver {options.ode_solver} (its options: --solver-options, --rtol, --atol, --eps)")
    if options.ode_denoise and not options.ode_solver:
        raise ValueError("--ode-denoise applies to --ode-solver sampling (predictor-corrector sampling ends with the "
                         "predictor's noise-free mean already)")
    if options.start_time is not None and options.ode_solver:
        raise ValueError("--start-time applies to predictor-corrector sampling, not to --ode-solver "
                         f"{options.ode_solver} (which integrates from T)")
    if options.solver_options and not options.ode_solver:
        raise ValueError("--solver-options applies to --ode-solver sampling; for predictor-corrector sampling use "
                         "--predictor-options")
    if options.ode_solver:  # the solver is built here, so an unknown name or option fails before any sampling
        sampler: SamplerProtocol = ProbabilityFlowSampler(
            solver=options.ode_solver, rtol=options.rtol, atol=options.atol,
            eps=1e-3 if options.eps is None else options.eps, solver_options=options.solver_options,
            denoise=options.ode_denoise, **condition)
    else:
        sampler = build_sampler(options, **condition)
    sampler.check(sde)  # an incompatible predictor, corrector or eps fails before any batch starts
    return sampler


def generate(options: GuidedSamplingOptions, model: Any, sde: Any, shape: tuple[int, ...],
             sampler: SamplerProtocol | None = None, interruptible: bool = False) -> GatheredSamples:
    """``options.num_samples`` samples in seeded blocks (shared by torchrun ranks)."""
    from scoreflow.evaluation.runs import sample_many

    return sample_many(model, sde, shape, options.num_samples,
                       sampler=sampler or sampling_plan(options, sde, model), batch_size=options.batch_size,
                       seed=options.seed, device=options.device, progress=not options.no_progress,
                       interruptible=interruptible)
