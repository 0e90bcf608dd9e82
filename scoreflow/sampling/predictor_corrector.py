"""The predictor-corrector sampler: a step-wise predictor and a corrector on a grid of times."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.errors import DroppedOptionsError, IncompatibleComponentsError, NonFiniteError
from scoreflow.hookspecs import BASES_BY_KIND
from scoreflow.models.base import ScoreModel
from scoreflow.registry import check_instance
from scoreflow.sampling.base import Corrector, GridPosition, Predictor
from scoreflow.sampling.conditioning import Condition, Hook, NoCondition
from scoreflow.sampling.correctors import NoneCorrector
from scoreflow.sampling.noising import renoise, starting_state
from scoreflow.sampling.predictors import EulerMaruyama
from scoreflow.sampling.protocol import SampleResult, StepCallback, begin_sampling, check_shape
from scoreflow.sampling.schedules import BUILTIN_SCHEDULES, Schedule, check_times, default_schedule_name
from scoreflow.sde.base import final_time
from scoreflow.tensor import check_finite
from scoreflow.validators import check_eps, check_grid_steps, non_negative_int, positive_int, sde_time

if TYPE_CHECKING:
    from scoreflow.plugins import PluginHost
    from scoreflow.sde.base import SDE


def resolve_component(kind: str, obj: Any, host: PluginHost | None, **options: Any) -> Any:
    """A component of ``kind`` from a registered name (through ``host``, default the plugin host) or an instance
    (as it is, after a type check: components given as instances need no plugin host)."""
    if isinstance(obj, str) or host is not None:
        from scoreflow.plugins import get_host

        return (host or get_host()).registry(kind).resolve(obj, **options)
    return check_instance(kind, obj, BASES_BY_KIND[kind])


def resolve_condition(condition: str | Condition | None, options: dict[str, Any], host: PluginHost | None
                      ) -> Condition:
    """The condition a sampler steers by (:class:`NoCondition` for ``None``), refusing options it would drop."""
    if condition is None:
        if options:
            raise DroppedOptionsError("condition_options given without a condition")
        return NoCondition()
    if not isinstance(condition, str) and options:
        raise DroppedOptionsError(f"condition_options {sorted(options)} cannot apply to the condition instance "
                                  f"{type(condition).__name__}; set them on it")
    return resolve_component("condition", condition, host, **options)


@attrs.define(kw_only=True)
class PredictorCorrectorSampler:
    """Predictor-corrector sampling of the reverse-time SDE (Song et al. 2021, Alg. 1) on a grid of times.

    ``sf.Sampler(...)`` builds one for a step-wise predictor. Components are given by registered name
    (``"euler"``, ``"langevin"``, ``"vpsde:ancestral"``: resolved here, so a typo fails at construction with the
    list of available names) or as instances; the defaults are built-in instances and never ask the plugin host.

    Attributes:
        predictor: Predictor name or instance (default: Euler-Maruyama).
        corrector: Corrector name or instance; ``None`` or ``"none"`` for no corrector.
        num_steps: Number of predictor steps from the start time down to ``eps``.
        snr: Signal-to-noise ratio of a corrector given by name (default 0.15, the tutorial's).
        n_steps: Corrector steps per noise level, for a corrector given by name (default 1).
        eps: Final time (sampling stops at ``eps`` to avoid the singular ``t = 0``); default: the SDE's
            ``default_eps`` (1e-3 for the built-in SDEs, the tutorial's).
        denoise: Return the last noise-free mean (or the predictor's ``finish``) instead of the noisy state.
        predictor_options: Extra keyword options for a predictor given by name.
        corrector_options: Extra keyword options for a corrector given by name.
        schedule: Time-schedule name or instance (``"uniform_t"``, ``"log_sigma"``, ``"karras"``,
            ``"uniform_sigma"``, ...); default: the predictor's ``preferred_schedule``, else the SDE's
            ``default_schedule`` (a built-in name is taken from the built-ins, not the plugin host).
        schedule_options: Options of a schedule given by name (e.g. ``{"rho": 5}`` for ``karras``).
        times: An explicit decreasing grid ``T >= t_0 > ... > t_N > 0`` instead of a schedule
            (``num_steps``, ``eps`` and the start are then taken from it).
        start_time: Where sampling starts (default: the SDE's end time ``T``). Below ``T`` the schedule lays its
            grid over ``[eps, start_time]`` and sampling starts from ``N(0, std(start_time)^2)``, the forward
            marginal of a point at the origin (truncated sampling: right where the noise swamps the data, as
            diffusers' "leading" timesteps start at t = 0.83 T) or from given images noised to it
            (:meth:`sample`'s ``images``, image-to-image).
        condition: A condition name or instance (``"inpaint"``, ``"classifier_guidance"``, ...) that steers
            sampling toward a conditional distribution; ``None`` samples unconditionally.
        condition_options: Options of a condition given by name (e.g. ``{"known": x, "mask": m}``).
        resample: RePaint's resampling (Lugmayr et al. 2022; their ``U`` is ``resample + 1``): after each block of
            ``resample_jump`` steps, jump back to the block's start by the forward process and take the block again,
            ``resample`` more times. Lets the unknown entries of a conditional sample (inpainting) agree with
            the known ones; costs ``resample + 1`` times the network evaluations. 0 (default) = no resampling.
        resample_jump: Steps per resampled block (RePaint's jump length ``j``).
        host: Plugin host to resolve names with (default: :func:`scoreflow.get_host`, asked only for names).
    """

    predictor: str | Predictor = attrs.field(factory=EulerMaruyama)
    corrector: str | Corrector | None = None
    num_steps: int = attrs.field(default=1000, validator=positive_int)
    snr: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    n_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    eps: float | None = attrs.field(default=None, validator=attrs.validators.optional(sde_time))
    denoise: bool = True
    predictor_options: dict[str, Any] = attrs.field(factory=dict)
    corrector_options: dict[str, Any] = attrs.field(factory=dict)
    schedule: str | Schedule | None = None
    schedule_options: dict[str, Any] = attrs.field(factory=dict)
    times: torch.Tensor | None = attrs.field(default=None, eq=False)
    start_time: float | None = attrs.field(default=None, validator=attrs.validators.optional(sde_time))
    condition: str | Condition | None = attrs.field(default=None, eq=False)
    condition_options: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    resample: int = attrs.field(default=0, validator=non_negative_int)
    resample_jump: int = attrs.field(default=1, validator=positive_int)
    host: PluginHost | None = attrs.field(default=None, repr=False, eq=False)
    _predictor: Predictor = attrs.field(init=False, repr=False, eq=False)
    _corrector: Corrector = attrs.field(init=False, repr=False, eq=False)
    _schedule: Schedule | None = attrs.field(init=False, repr=False, eq=False)
    _condition: Condition = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        self._predictor = self._build_predictor()
        self._corrector = self._build_corrector()
        self._schedule = self._build_grid()
        self._condition = resolve_condition(self.condition, self.condition_options, self.host)
        self._check_combination()

    def _build_predictor(self) -> Predictor:
        if not isinstance(self.predictor, str) and self.predictor_options:
            raise DroppedOptionsError(f"predictor_options {sorted(self.predictor_options)} cannot apply to the "
                                      f"predictor instance {type(self.predictor).__name__}; set them on it")
        return resolve_component("predictor", self.predictor, self.host, **self.predictor_options)

    def _build_corrector(self) -> Corrector:
        corrector = "none" if self.corrector is None else self.corrector
        given = {k: v for k, v in (("snr", self.snr), ("n_steps", self.n_steps)) if v is not None}
        if not isinstance(corrector, str) and (given or self.corrector_options):
            raise DroppedOptionsError(
                f"options {sorted({**given, **self.corrector_options})} cannot apply to the corrector instance "
                f"{type(corrector).__name__}; set them on it (e.g. Langevin(snr=0.2))")
        options = {"snr": 0.15, "n_steps": 1, **given, **self.corrector_options}
        if corrector == "none" and self.host is None:  # no corrector: nothing to look up
            return NoneCorrector(**options)
        return resolve_component("corrector", corrector, self.host, **options)

    def _build_grid(self) -> Schedule | None:
        """The schedule given (``None``: chosen per SDE), or the explicit ``times`` checked and adopted."""
        if self.times is not None:
            if self.schedule is not None or self.schedule_options:
                raise DroppedOptionsError("give either times (an explicit grid) or schedule, not both")
            if self.start_time is not None:
                raise DroppedOptionsError("give either times (an explicit grid, which starts where it starts) or "
                                          "start_time, not both")
            self.times = check_times(self.times)
            self.num_steps = len(self.times) - 1
            self.eps = float(self.times[-1])
            return None
        if self.schedule is None:
            if self.schedule_options:
                raise DroppedOptionsError("schedule_options given without a schedule")
            return None
        if not isinstance(self.schedule, str) and self.schedule_options:
            raise DroppedOptionsError(f"schedule_options {sorted(self.schedule_options)} cannot apply to the "
                                      f"schedule instance {type(self.schedule).__name__}")
        return resolve_component("schedule", self.schedule, self.host, **self.schedule_options)

    def _check_combination(self) -> None:
        if self.resample:
            self._check_resampling()
        if self._predictor.stateful and not self._condition.supports_stateful_predictors:
            raise IncompatibleComponentsError(
                f"condition {type(self._condition).__name__} reorders the batch and cannot carry the history of "
                f"predictor {type(self._predictor).__name__}; use a one-step predictor (euler, reverse_diffusion)")
        moves = self.num_steps * (self.resample + 1) + self.resample * -(-self.num_steps // self.resample_jump)
        check_grid_steps(f"num_steps={self.num_steps} with resample={self.resample}", moves)

    def _check_resampling(self) -> None:
        if self._predictor.stateful:
            raise IncompatibleComponentsError(
                f"resample={self.resample} jumps back in time and repeats steps; predictor "
                f"{type(self._predictor).__name__} keeps a history across steps and cannot; use a one-step "
                "predictor (euler_maruyama, reverse_diffusion, ...)")
        if not self._condition.supports_resampling:
            raise IncompatibleComponentsError(
                f"resample={self.resample} repeats steps, which condition {type(self._condition).__name__} does not "
                "allow (its state assumes one pass over the grid); use resample=0")

    def moves(self, num_steps: int) -> list[tuple[int, int]]:
        """The sampler's path over grid indices: ``(i, i + 1)`` is a step from ``times[i]`` to ``times[i + 1]``,
        ``(j, i)`` with ``j > i`` a jump back by the forward process (only with ``resample``)."""
        path: list[tuple[int, int]] = []
        for start in range(0, num_steps, self.resample_jump):
            end = min(start + self.resample_jump, num_steps)
            block = [(i, i + 1) for i in range(start, end)]
            path += block
            for _ in range(self.resample):
                path += [(end, start), *block]
        return path

    @property
    def predictor_obj(self) -> Predictor:
        """The resolved predictor instance."""
        return self._predictor

    @property
    def corrector_obj(self) -> Corrector:
        """The resolved corrector instance."""
        return self._corrector

    @property
    def condition_obj(self) -> Condition:
        """The resolved condition (:class:`~scoreflow.sampling.conditioning.NoCondition` when none was given)."""
        return self._condition

    def schedule_for(self, sde: SDE) -> Schedule:
        """The schedule this sampler uses on ``sde``: its own, else the predictor's ``preferred_schedule``,
        else the SDE's ``default_schedule`` (a built-in name taken from the built-ins, not the plugin host)."""
        if self._schedule is not None:
            return self._schedule
        name = getattr(self._predictor, "preferred_schedule", None) or default_schedule_name(sde)
        if isinstance(name, Schedule):
            return name
        if self.host is None and name in BUILTIN_SCHEDULES:
            return BUILTIN_SCHEDULES[name]()
        return resolve_component("schedule", name, self.host)

    def grid(self, sde: SDE, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The decreasing times this sampler steps along on ``sde`` (an explicit ``times`` as given)."""
        if self.times is not None:
            return check_times(self.times, sde)
        return self.schedule_for(sde)(sde, self.num_steps, self.eps_for(sde), dtype=dtype, start=self.start_time)

    def start_for(self, sde: SDE) -> float:
        """Where sampling starts on ``sde``: the grid's first time (``T`` unless ``start_time``, explicit ``times``
        or a tuned schedule say otherwise)."""
        return float(self.grid(sde)[0])

    def eps_for(self, sde: SDE) -> float:
        """The final time on ``sde``: this sampler's ``eps``, else the SDE's ``default_eps``."""
        return final_time(sde, self.eps)

    def check(self, sde: SDE) -> None:
        """Raise now if this sampler cannot run on ``sde``: a component's declared requirement that
        ``sde`` lacks (:class:`IncompatibleComponentsError` naming it), ``eps`` not below ``sde.T``, or a grid
        the schedule cannot lay. :meth:`sample` calls it first; call it yourself to fail before loading data or
        models."""
        self._predictor.check_sde(sde)
        self._corrector.check_sde(sde)
        check_eps(self.eps_for(sde), sde.T)
        self.grid(sde)

    def sample(
        self,
        model: ScoreModel,
        sde: SDE,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        callback: StepCallback | None = None,
        progress: bool = False,
        dtype: torch.dtype = torch.float32,
        init: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
    ) -> SampleResult:
        """Draw ``shape[0]`` samples with ``model``'s score under ``sde``.

        Args:
            model: A score network or any callable ``score(x, t)``.
            sde: The forward SDE the model was trained for.
            shape: ``(batch, ...)`` shape of the samples.
            generator: Makes sampling reproducible: same generator state, same samples.
            device: Where to sample (default: the model's device, else the generator's).
            callback: Called after every step with ``{"i", "t", "x", "x_mean", "nfe"}``.
            progress: Show a tqdm progress bar.
            dtype: Floating dtype of the samples.
            init: Start from this state at the grid's first time instead of a draw from the prior
                (shape ``shape``; its dtype and device are used).
            images: Image-to-image (SDEdit, Meng et al. 2022): noise these images (shape ``shape``, in the model's
                data convention) by the forward process to the grid's first time (the sampler's ``start_time``)
                and run the reverse process from there: early start times keep the images' layout, ``T`` forgets
                them. Not with ``init``.
        """
        shape = check_shape(shape)
        self.check(sde)
        device, counting, score = begin_sampling(self._condition, model, sde, shape, generator=generator,
                                                 device=device, dtype=dtype,
                                                 given=init if init is not None else images)
        with torch.no_grad():
            x = starting_state(shape, self.start_for(sde), sde=sde, generator=generator, device=device, dtype=dtype,
                               init=init, images=images)
            x = _GridRun(self, sde, score, counting, generator, callback).run(x, progress)
        check_finite("samples", x)
        return SampleResult(x, counting.calls)


@attrs.define
class _GridRun:
    """One sampling call's walk over the grid: each component's fresh state, the steps, the jumps back."""

    sampler: PredictorCorrectorSampler
    sde: SDE
    score: Any
    counting: Any
    generator: torch.Generator | None
    callback: StepCallback | None

    def run(self, x: torch.Tensor, progress: bool) -> torch.Tensor:
        from tqdm.auto import tqdm

        sampler, sde = self.sampler, self.sde
        predictor, condition = sampler.predictor_obj, sampler.condition_obj
        times = sampler.grid(sde, dtype=x.dtype).to(device=x.device, dtype=x.dtype)
        grid = GridPosition(sampler.grid(sde, dtype=torch.float64) if sampler.times is None else sampler.times)
        predictor_state, condition_state = predictor.init_state(grid, sde), condition.init_state(grid)
        x, x_mean = self._constrain(x, x, times[0], condition_state, Hook.START)
        for i, j in tqdm(sampler.moves(len(times) - 1), desc="sampling", disable=not progress, leave=False):
            if j < i:  # RePaint's jump back: x at times[i] -> x at the earlier, noisier times[j]
                x = renoise(x, times[i].expand(x.shape[0]), times[j].expand(x.shape[0]), sde=sde,
                            generator=self.generator)
                x, x_mean = self._constrain(x, x, times[j], condition_state, Hook.RENOISE)
                continue
            grid.index = i
            x, x_mean = self._step(x, times, i, predictor_state, condition_state)
        if not sampler.denoise:
            return condition.finalize(x, condition_state)
        finished = predictor.finish(x, sde=sde, score=self.score, state=predictor_state)
        return condition.finalize(x_mean if finished is None else finished, condition_state)

    def _constrain(self, x, x_mean, t, condition_state, after: Hook):
        return self.sampler.condition_obj.constrain(x, x_mean, t.expand(x.shape[0]), sde=self.sde,
                                                 generator=self.generator, state=condition_state, after=after)

    def _step(self, x, times, i, predictor_state, condition_state):
        """The corrector at ``times[i]``, then the predictor to ``times[i + 1]``, each followed by the condition."""
        sampler, sde = self.sampler, self.sde
        predictor, corrector = sampler.predictor_obj, sampler.corrector_obj
        t = times[i].expand(x.shape[0])
        if corrector.nfe_per_step:
            x, x_mean = corrector.step(x, t, sde=sde, score=self.score, generator=self.generator)
            x, x_mean = self._constrain(x, x_mean, times[i], condition_state, Hook.CORRECTOR)
        dt = float(times[i + 1] - times[i])
        x, x_mean = predictor.step(x, t, dt, sde=sde, score=self.score, generator=self.generator,
                                   state=predictor_state)
        x, x_mean = self._constrain(x, x_mean, times[i + 1], condition_state, Hook.PREDICTOR)
        if not torch.isfinite(x).all():
            raise NonFiniteError(
                f"sampling with {predictor!r} and {corrector!r} produced non-finite values at step "
                f"{i + 1} of {len(times) - 1} (t={float(times[i]):.6g} -> {float(times[i + 1]):.6g})")
        if self.callback is not None:
            self.callback({"i": i, "t": times[i + 1], "x": x, "x_mean": x_mean, "nfe": self.counting.calls})
        return x, x_mean
