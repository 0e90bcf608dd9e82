"""The predictor-corrector sampler that composes registered components."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.errors import DroppedOptionsError, IncompatibleComponentsError, NonFiniteError, UnknownComponentError
from scoreflow.hookspecs import BASES_BY_KIND
from scoreflow.models.base import ScoreModel, make_score_fn
from scoreflow.registry import check_instance
from scoreflow.sampling.base import Corrector, Predictor, SamplingState, TrajectorySolver
from scoreflow.sampling.conditioning import Condition
from scoreflow.sampling.correctors import NoneCorrector
from scoreflow.sampling.schedules import Schedule, check_start, check_times, default_schedule_name
from scoreflow.tensor import batch_broadcast, check_finite, randn_like
from scoreflow.validators import check_eps, non_negative_int, positive_int

if TYPE_CHECKING:
    from scoreflow.plugins import PluginHost
    from scoreflow.sde.base import SDE


@attrs.frozen
class SampleResult:
    """Samples and the number of score-function evaluations (NFE) spent on them."""

    samples: torch.Tensor
    nfe: int


def _positive_eps(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """Positive and finite; below the SDE's ``T`` is checked with the SDE (:meth:`Sampler.check`, ``check_eps``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"eps must be a positive number below the SDE's end time T, got {value!r}")


def _positive_time(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive real number at most the SDE's end time T, got {value!r}")


def check_shape(shape: Any) -> tuple[int, ...]:
    """Validate a sample shape ``(B, ...)`` of positive integers."""
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a sequence of positive integers, got {shape!r}") from None
    if len(dims) < 2 or min(dims) <= 0 or any(int(s) != s for s in shape):
        raise ValueError(f"shape must be (batch, ...) with positive integers and at least 2 dims, got {shape!r}")
    return dims


def model_device(model: Any, default: torch.device | str | None = None) -> torch.device:
    """The device of ``model``'s first parameter, else ``default``, else CPU."""
    if default is not None:
        return torch.device(default)
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


@attrs.define(kw_only=True)
class Sampler:
    """Predictor-corrector sampling of the reverse-time SDE (Song et al. 2021, Alg. 1).

    Components are given by registered name (``"euler"``, ``"langevin"``,
    ``"vpsde:ancestral"``) or as instances; names are resolved here, so a typo fails
    at construction with the list of available names.

    Attributes:
        predictor: Predictor name or instance.
        corrector: Corrector name or instance; ``None`` or ``"none"`` for no corrector.
        num_steps: Number of predictor steps from ``T`` down to ``eps``.
        snr: Signal-to-noise ratio of a corrector given by name (default 0.15, the tutorial's).
        n_steps: Corrector steps per noise level, for a corrector given by name (default 1).
        eps: Final time (sampling stops at ``eps`` to avoid the singular ``t = 0``); default: the SDE's
            ``default_eps`` (1e-3 for the built-in SDEs, the tutorial's).
        schedule: Time-schedule name or instance (``"uniform_t"``, ``"log_sigma"``, ``"karras"``,
            ``"uniform_sigma"``, ...); default: the SDE's ``default_schedule``.
        schedule_options: Options of a schedule given by name (e.g. ``{"rho": 5}`` for ``karras``).
        times: An explicit decreasing grid ``T >= t_0 > ... > t_N > 0`` instead of a schedule
            (``num_steps``, ``eps`` and the start are then taken from it).
        start_time: Where sampling starts (default: the SDE's end time ``T``). Below ``T`` the schedule lays its
            grid over ``[eps, start_time]`` and sampling starts from ``N(0, std(start_time)^2)``, the forward
            marginal of a point at the origin (truncated sampling: right where the noise swamps the data, as
            diffusers' "leading" timesteps start at t = 0.83 T) or from given images noised to it
            (:meth:`sample`'s ``images``, image-to-image).
        denoise: Return the last noise-free mean instead of the noisy state.
        predictor_options: Extra keyword options for a predictor given by name.
        corrector_options: Extra keyword options for a corrector given by name.
        condition: A condition name or instance (``"inpaint"``, ``"classifier_guidance"``, ...) that steers
            sampling toward a conditional distribution; ``None`` samples unconditionally.
        condition_options: Options of a condition given by name (e.g. ``{"known": x, "mask": m}``).
        resample: RePaint's resampling (Lugmayr et al. 2022; their ``U`` is ``resample + 1``): after each block of
            ``resample_jump`` steps, jump back to the block's start by the forward process and take the block again,
            ``resample`` more times. Lets the unknown entries of a conditional sample (inpainting) agree with
            the known ones; costs ``resample + 1`` times the network evaluations. 0 (default) = no resampling.
        resample_jump: Steps per resampled block (RePaint's jump length ``j``).
        host: Plugin host to resolve names with (default: :func:`scoreflow.get_host`).
    """

    predictor: str | Predictor | TrajectorySolver = "euler_maruyama"
    corrector: str | Corrector | None = None
    num_steps: int = attrs.field(default=1000, validator=positive_int)
    snr: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    n_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    eps: float | None = attrs.field(default=None, validator=attrs.validators.optional(_positive_eps))
    denoise: bool = True
    predictor_options: dict[str, Any] = attrs.field(factory=dict)
    corrector_options: dict[str, Any] = attrs.field(factory=dict)
    schedule: str | Schedule | None = None
    schedule_options: dict[str, Any] = attrs.field(factory=dict)
    times: torch.Tensor | None = attrs.field(default=None, eq=False)
    start_time: float | None = attrs.field(default=None, validator=attrs.validators.optional(_positive_time))
    condition: str | Condition | None = attrs.field(default=None, eq=False)
    condition_options: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    resample: int = attrs.field(default=0, validator=non_negative_int)
    resample_jump: int = attrs.field(default=1, validator=positive_int)
    host: PluginHost | None = attrs.field(default=None, repr=False, eq=False)
    _predictor: Predictor | TrajectorySolver = attrs.field(init=False, repr=False, eq=False)
    _corrector: Corrector = attrs.field(init=False, repr=False, eq=False)
    _schedule: Schedule | None = attrs.field(init=False, repr=False, eq=False)
    _condition: Condition = attrs.field(init=False, repr=False, eq=False)

    def _resolve(self, kind: str, obj: Any, **options: Any) -> Any:
        """A component of ``kind`` from a registered name (through the plugin host) or an instance (as it is, after
        a type check): components given as instances need no plugin host."""
        if isinstance(obj, str) or self.host is not None:
            from scoreflow.plugins import get_host

            return (self.host or get_host()).registry(kind).resolve(obj, **options)
        return check_instance(kind, obj, BASES_BY_KIND[kind])

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.predictor, str) and self.predictor_options:
            raise DroppedOptionsError(f"predictor_options {sorted(self.predictor_options)} cannot apply to the "
                                      f"predictor instance {type(self.predictor).__name__}; set them on it")
        self._predictor = resolve_predictor(self.predictor, host=self.host, **self.predictor_options)
        corrector = "none" if self.corrector is None else self.corrector
        given = {k: v for k, v in (("snr", self.snr), ("n_steps", self.n_steps)) if v is not None}
        if not isinstance(corrector, str) and (given or self.corrector_options):
            raise DroppedOptionsError(
                f"options {sorted({**given, **self.corrector_options})} cannot apply to the corrector instance "
                f"{type(corrector).__name__}; set them on it (e.g. Langevin(snr=0.2))")
        options = {"snr": 0.15, "n_steps": 1, **given, **self.corrector_options}
        if corrector == "none" and self.host is None:  # no corrector: nothing to look up
            self._corrector = NoneCorrector(**options)
        else:
            self._corrector = self._resolve("corrector", corrector, **options)
        self._schedule = None
        if self.times is not None:
            if self.schedule is not None or self.schedule_options:
                raise DroppedOptionsError("give either times (an explicit grid) or schedule, not both")
            if self.start_time is not None:
                raise DroppedOptionsError("give either times (an explicit grid, which starts where it starts) or "
                                          "start_time, not both")
            self.times = check_times(self.times)
            self.num_steps = len(self.times) - 1
            self.eps = float(self.times[-1])
        elif self.schedule is not None:
            if not isinstance(self.schedule, str) and self.schedule_options:
                raise DroppedOptionsError(f"schedule_options {sorted(self.schedule_options)} cannot apply to the "
                                          f"schedule instance {type(self.schedule).__name__}")
            self._schedule = self._resolve("schedule", self.schedule, **self.schedule_options)
        elif self.schedule_options:
            raise DroppedOptionsError("schedule_options given without a schedule")
        if self.condition is None:
            if self.condition_options:
                raise DroppedOptionsError("condition_options given without a condition")
            self._condition = _Unconditional()
        else:
            if not isinstance(self.condition, str) and self.condition_options:
                raise DroppedOptionsError(f"condition_options {sorted(self.condition_options)} cannot apply to the "
                                          f"condition instance {type(self.condition).__name__}; set them on it")
            self._condition = self._resolve("condition", self.condition, **self.condition_options)
        if self.resample:
            self._check_resampling()
        from scoreflow.validators import check_grid_steps

        moves = self.num_steps * (self.resample + 1) + self.resample * -(-self.num_steps // self.resample_jump)
        check_grid_steps(f"num_steps={self.num_steps} with resample={self.resample}", moves)
        if isinstance(self._predictor, TrajectorySolver) and type(self._condition).constrain is not Condition.constrain:
            raise IncompatibleComponentsError(
                f"predictor {type(self._predictor).__name__} integrates the whole trajectory and cannot apply "
                f"condition {type(self._condition).__name__}, which adjusts the state after every step; use a "
                "step-wise predictor")
        if isinstance(self._predictor, TrajectorySolver) and (self.times is not None or self.schedule is not None):
            raise DroppedOptionsError(
                f"predictor {type(self._predictor).__name__} integrates the whole trajectory on its own grid and "
                "would ignore schedule/times; use its own options (predictor_options) instead")
        if isinstance(self._predictor, TrajectorySolver) and self._corrector.nfe_per_step > 0:
            raise IncompatibleComponentsError(
                f"predictor {type(self._predictor).__name__} integrates the whole trajectory and cannot be "
                f"combined with corrector {type(self._corrector).__name__}; use corrector=None"
            )

    def _check_resampling(self) -> None:
        if isinstance(self._predictor, TrajectorySolver) or self._predictor.stateful:
            raise IncompatibleComponentsError(
                f"resample={self.resample} jumps back in time and repeats steps; predictor "
                f"{type(self._predictor).__name__} keeps a history across steps (or integrates the whole trajectory) "
                "and cannot; use a one-step predictor (euler_maruyama, reverse_diffusion, ...)")
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
    def predictor_obj(self) -> Predictor | TrajectorySolver:
        """The resolved predictor instance."""
        return self._predictor

    @property
    def corrector_obj(self) -> Corrector:
        """The resolved corrector instance."""
        return self._corrector

    def schedule_for(self, sde: SDE) -> Schedule:
        """The schedule this sampler uses on ``sde``: its own, else the predictor's ``preferred_schedule``,
        else the SDE's ``default_schedule``."""
        if self._schedule is not None:
            return self._schedule
        name = getattr(self._predictor, "preferred_schedule", None) or default_schedule_name(sde)
        if isinstance(name, Schedule):
            return name
        return self._resolve("schedule", name)

    def grid(self, sde: SDE, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The decreasing times this sampler steps along on ``sde`` (an explicit ``times`` as given)."""
        if self.times is not None:
            return check_times(self.times, sde)
        return self.schedule_for(sde)(sde, self.num_steps, self.eps_for(sde), dtype=dtype, start=self.start_time)

    def start_for(self, sde: SDE) -> float:
        """Where sampling starts on ``sde``: the grid's first time (``T`` unless ``start_time``, explicit ``times``
        or a tuned schedule say otherwise)."""
        if isinstance(self._predictor, TrajectorySolver):
            return sde.T if self.start_time is None else check_start(self.start_time, sde, self.eps_for(sde))
        return float(self.grid(sde)[0])

    def eps_for(self, sde: SDE) -> float:
        """The final time on ``sde``: this sampler's ``eps``, else the SDE's ``default_eps``."""
        return self.eps if self.eps is not None else float(getattr(sde, "default_eps", 1e-3))

    def check(self, sde: SDE) -> None:
        """Raise now if this sampler cannot run on ``sde``: a component's declared requirement that
        ``sde`` lacks (:class:`IncompatibleComponentsError` naming it), or ``eps`` not below ``sde.T``.

        :meth:`sample` calls it first; call it yourself to fail before loading data or models.
        """
        self._predictor.check_sde(sde)
        self._corrector.check_sde(sde)
        check_eps(self.eps_for(sde), sde.T)
        if not isinstance(self._predictor, TrajectorySolver):  # a trajectory solver picks its own steps
            self.grid(sde)  # an unknown default schedule or an invalid grid fails here, before sampling
        elif self.start_time is not None:
            check_start(self.start_time, sde, self.eps_for(sde))

    def sample(
        self,
        model: ScoreModel,
        sde: SDE,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
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
            callback: Called after every step with ``{"i", "t", "x", "x_mean", "nfe"}`` (a whole-trajectory
                solver has no steps to report: once, when it is done).
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
        self._condition.check(shape, sde)
        self._condition.check_model(model)
        device = model_device(model, device if device is not None else (generator.device if generator else None))
        from scoreflow.models.base import check_model_dtype

        if init is not None and images is not None:
            raise ValueError("give init (the state at the start time) or images (noised to it), not both")
        given = init if init is not None else images
        check_model_dtype(model, given.dtype if isinstance(given, torch.Tensor) else dtype)
        start = self.start_for(sde)
        counting = CountingScore(make_score_fn(model, sde), shape[0])
        score = self._condition.guide(counting, sde)
        with torch.no_grad():
            if images is not None:
                x = noise_images(_check_init(images, shape, "images"), start, sde=sde, generator=generator)
            elif init is None:
                x = prior_at(sde, shape, start, generator=generator, device=device, dtype=dtype)
            else:
                x = _check_init(init, shape)
            if isinstance(self._predictor, TrajectorySolver):
                x, _ = self._predictor.solve(
                    x, start, self.eps_for(sde), self.num_steps, sde=sde, score=score,
                    generator=generator
                )
                x = self._condition.finalize(x)
                if callback is not None:  # no steps to report: once, at the end
                    callback(final_report(self.eps_for(sde), x, counting.calls))
            else:
                x = self._loop(x, sde, score, counting, generator, callback, progress)
        check_finite("samples", x)
        return SampleResult(x, counting.calls)

    def _loop(self, x, sde, score, counting, generator, callback, progress) -> torch.Tensor:
        from tqdm.auto import tqdm

        times = self.grid(sde, dtype=x.dtype).to(device=x.device, dtype=x.dtype)
        predictor, corrector, condition = self._predictor, self._corrector, self._condition
        state = SamplingState(self.grid(sde, dtype=torch.float64) if self.times is None else self.times)
        options = {"state": state} if predictor.stateful else {}
        x, x_mean = condition.constrain(x, x, times[0].expand(x.shape[0]), sde=sde, generator=generator, state=state,
                                        after="start")
        moves = self.moves(len(times) - 1)
        for i, j in tqdm(moves, desc="sampling", disable=not progress, leave=False):
            if j < i:  # RePaint's jump back: x at times[i] -> x at the earlier, noisier times[j]
                x = renoise(x, times[i].expand(x.shape[0]), times[j].expand(x.shape[0]), sde=sde, generator=generator)
                x, x_mean = condition.constrain(x, x, times[j].expand(x.shape[0]), sde=sde, generator=generator,
                                                state=state, after="renoise")
                continue
            state.index = i
            t = times[i].expand(x.shape[0])
            if corrector.nfe_per_step:
                x, x_mean = corrector.step(x, t, sde=sde, score=score, generator=generator)
                x, x_mean = condition.constrain(x, x_mean, t, sde=sde, generator=generator, state=state,
                                                after="corrector")
            dt = float(times[i + 1] - times[i])
            x, x_mean = predictor.step(x, t, dt, sde=sde, score=score, generator=generator, **options)
            x, x_mean = condition.constrain(x, x_mean, times[i + 1].expand(x.shape[0]), sde=sde,
                                            generator=generator, state=state)
            if not torch.isfinite(x).all():
                raise NonFiniteError(
                    f"sampling with {predictor!r} and {corrector!r} produced non-finite values at step "
                    f"{i + 1} of {len(times) - 1} (t={float(times[i]):.6g} -> {float(times[i + 1]):.6g})")
            if callback is not None:
                callback({"i": i, "t": times[i + 1], "x": x, "x_mean": x_mean, "nfe": counting.calls})
        if not self.denoise:
            return condition.finalize(x, state)
        finished = predictor.finish(x, sde=sde, score=score, state=state)
        return condition.finalize(x_mean if finished is None else finished, state)


def final_report(eps: float, x: torch.Tensor, nfe: int) -> dict[str, Any]:
    """The callback's ``{"i", "t", "x", "x_mean", "nfe"}`` for a sampler that reports once, at the end."""
    return {"i": 0, "t": torch.tensor(eps), "x": x, "x_mean": x, "nfe": nfe}


def resolve_predictor(obj: str | Predictor | TrajectorySolver, *, host: Any = None, **options: Any
                      ) -> Predictor | TrajectorySolver:
    """``obj`` by name from the ``predictor`` registry, else from the ``trajectory_solver`` registry (an unknown
    name lists both), or an instance of either kind after a type check (which needs no plugin host)."""
    if not isinstance(obj, str):
        return check_instance("predictor", obj, (Predictor, TrajectorySolver))
    if host is None:
        from scoreflow.plugins import get_host

        host = get_host()
    predictors, solvers = host.registry("predictor"), host.registry("trajectory_solver")
    if obj not in predictors and obj in solvers:
        return solvers.create(obj, **options)
    try:
        return predictors.create(obj, **options)
    except UnknownComponentError as exc:
        raise UnknownComponentError(f"{exc} Whole-trajectory solvers (trajectory_solver): "
                                    f"{solvers.describe_names() or '(none)'}.") from None


def canonical_predictor_name(name: str, *, host: Any) -> str:
    """The canonical name of a predictor or whole-trajectory solver (the one its results are stored under)."""
    solvers = host.registry("trajectory_solver")
    if name not in host.registry("predictor") and name in solvers:
        return solvers.get(name).name
    return host.registry("predictor").get(name).name


def renoise(
    x: torch.Tensor, s: torch.Tensor, t: torch.Tensor, *, sde: SDE, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``x_t`` given ``x_s`` (``s < t``, shape ``(B,)`` each) under the forward process of a linear SDE:
    ``x_t = (alpha_t / alpha_s) x_s + alpha_t sqrt(sigma_t^2 - sigma_s^2) z`` with ``sigma`` the noise level."""
    alpha_s = batch_broadcast(sde.marginal_scale(s).to(x.dtype), x)
    alpha_t = batch_broadcast(sde.marginal_scale(t).to(x.dtype), x)
    level_s = batch_broadcast(sde.noise_level(s).to(x.dtype), x)
    level_t = batch_broadcast(sde.noise_level(t).to(x.dtype), x)
    spread = (level_t**2 - level_s**2).clamp_min(0).sqrt()
    return alpha_t / alpha_s * x + alpha_t * spread * randn_like(x, generator)


def prior_at(sde: SDE, shape: tuple[int, ...], t: float, *, generator: torch.Generator | None = None,
             device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A draw to start sampling from at time ``t``: the SDE's prior at ``T``; below it the same draw scaled to
    ``std(t) / std(T)``, the forward marginal at ``t`` of a point at the origin (what truncating the start
    neglects is the data's own spread, ``alpha(t)^2 Var(x_0)`` against ``std(t)^2``)."""
    x = sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
    if t >= sde.T:
        return x
    _, std = sde.marginal_prob(torch.zeros(2, 1, dtype=torch.float64), torch.tensor([t, sde.T], dtype=torch.float64))
    return x * float(std[0] / std[1])


def noise_images(images: torch.Tensor, t: float, *, sde: SDE, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """``images`` carried by the forward process to time ``t``: a draw of ``x_t ~ p_0t(. | x_0 = images)``."""
    mean, std = sde.marginal_prob(images, torch.full((images.shape[0],), t, dtype=images.dtype,
                                                     device=images.device))
    return mean + batch_broadcast(std, images) * randn_like(images, generator)


def _check_init(init: Any, shape: tuple[int, ...], name: str = "init") -> torch.Tensor:
    if not isinstance(init, torch.Tensor) or not init.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {type(init).__name__}")
    if tuple(init.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(init.shape)}, expected the sample shape {shape}")
    check_finite(name, init)
    return init.clone()


class _Unconditional(Condition):
    """No condition: every hook leaves the sampler as it is."""


class CountingScore:
    """Wraps a score function and counts its network evaluations of the sampled batch: the sampler's NFE, exact
    whatever the components do (a call on a stacked batch of ``k`` copies, as classifier-free guidance makes,
    counts ``k``)."""

    def __init__(self, score: Callable[..., torch.Tensor], batch: int) -> None:
        self.score, self.batch, self.calls = score, batch, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **labels: Any) -> torch.Tensor:
        self.calls += max(1, -(-x.shape[0] // self.batch))
        return self.score(x, t, **labels)
