"""Conditions: steer any predictor-corrector sampler toward a conditional distribution.

A :class:`Condition` acts at two points of every :class:`~scoreflow.Sampler` step, so it composes with every
predictor, corrector and schedule instead of being a sampler of its own:

- :meth:`Condition.guide` wraps the score function (classifier guidance adds
  ``scale * grad_x log p_t(y | x)``);
- :meth:`Condition.constrain` adjusts the state after every corrector and predictor step (inpainting puts the
  known entries back, noised to the step's time as the forward process would have them).

Built-ins: ``inpaint`` (alias ``impute``), ``inpaint_smc``, ``colorize`` and ``classifier_guidance``; plugins
add more through ``scoreflow_register_conditions``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import torch

from scoreflow.errors import IncompatibleComponentsError
from scoreflow.sampling.base import GridPosition
from scoreflow.tensor import batch_broadcast, check_finite, randn_like

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE, ScoreFn

#: ``classifier(x, t) -> logits`` of shape ``(B, n_classes)``: log p_t(y | x) up to a per-sample constant.
NoisyClassifierFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Hook(str, enum.Enum):
    """The points of a sampling call at which :meth:`Condition.constrain` runs (its ``after``). A ``str`` enum: a
    member equals its value (``Hook.PREDICTOR == "predictor"``)."""

    START = "start"  #: after the prior draw (or the given start), before the first step
    CORRECTOR = "corrector"  #: after each corrector step
    PREDICTOR = "predictor"  #: after each predictor step
    RENOISE = "renoise"  #: after a jump back to an earlier time (``Sampler(resample=...)``)


class Condition(abc.ABC):
    """What a conditional sampler adds to an unconditional one (every hook defaults to doing nothing)."""

    #: Whether the sampler may repeat steps (``Sampler(resample=...)``); ``constrain`` is then also called with
    #: ``after=Hook.RENOISE`` when the state jumps back to an earlier time.
    supports_resampling: ClassVar[bool] = True
    #: Whether a predictor that keeps a state across steps (a multistep method) may run under this condition
    #: (a condition that reorders the batch, such as particle resampling, would leave that state behind).
    supports_stateful_predictors: ClassVar[bool] = True

    def init_state(self, grid: GridPosition) -> Any:
        """A fresh state for one sampling call on ``grid`` (what the condition remembers between steps), or
        ``None`` (the default). Only this condition reads it; one instance serves many calls."""
        return None

    def check(self, shape: tuple[int, ...], sde: SDE) -> None:
        """Raise ``ValueError`` now if this condition cannot apply to samples of ``shape`` under ``sde``."""

    def check_model(self, model: object) -> None:
        """Raise ``ValueError`` now if this condition cannot steer ``model`` (e.g. it needs a class-conditional
        network)."""

    def guide(self, score: ScoreFn, sde: SDE) -> ScoreFn:
        """The score function the sampler should use instead of ``score`` (default: ``score``)."""
        return score

    def constrain(
        self, x: torch.Tensor, x_mean: torch.Tensor, t: torch.Tensor, *, sde: SDE,
        generator: torch.Generator | None = None, state: Any = None, after: Hook = Hook.PREDICTOR,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample after a step that ended at time ``t`` (shape ``(B,)``); default: unchanged.

        ``after`` says what came before (a :class:`Hook`); ``state`` is what :meth:`init_state` returned for
        this sampling call."""
        return x, x_mean

    def finalize(self, x: torch.Tensor, state: Any = None) -> torch.Tensor:
        """The sampler's output after its last step and denoising (default: unchanged)."""
        return x


class NoCondition(Condition):
    """No condition: every hook leaves the sampler as it is."""


def _as_mask(mask: Any, known: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a tensor (True or 1 where an entry is known), got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must hold only 0 and 1 (or booleans): 1 where an entry is known")
        mask = mask.bool()
    try:
        torch.broadcast_shapes(mask.shape, known.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast against the known values of "
                         f"shape {tuple(known.shape)}") from None
    return mask


#: The named masks of :func:`named_mask` (``random:P`` takes a fraction ``P`` of known entries).
NAMED_MASKS = ("bottom-half", "top-half", "left-half", "right-half", "center", "random:P")


def named_mask(spec: str, shape: tuple[int, ...], *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask (True = known) of one sample's ``shape`` ``(C, H, W)`` (or ``(D,)`` for ``random:P``).

    ``bottom-half`` hides the bottom half of an image (the known part is the top), ``left-half`` hides the left
    half (and so on), ``center`` hides the central square of half the size, ``random:0.5`` keeps each entry
    with probability 0.5.
    """
    text = str(spec).strip().lower()
    if text.startswith("random:"):
        try:
            p = float(text.split(":", 1)[1])
        except ValueError:
            p = float("nan")
        if not 0 < p < 1:
            raise ValueError(f"mask {spec!r}: random:P needs a fraction 0 < P < 1 of known entries")
        return torch.rand(shape, generator=generator) < p
    if len(shape) != 3:
        raise ValueError(f"mask {spec!r} needs image samples (C, H, W), got sample shape {shape}; "
                         f"use random:P or a mask tensor")
    _, h, w = shape
    mask = torch.ones(shape, dtype=torch.bool)
    hidden = {"bottom-half": (slice(h // 2, h), slice(None)), "top-half": (slice(0, h - h // 2), slice(None)),
              "right-half": (slice(None), slice(w // 2, w)), "left-half": (slice(None), slice(0, w - w // 2)),
              "center": (slice(h // 4, h - h // 4), slice(w // 4, w - w // 4))}.get(text.replace("_", "-"))
    if hidden is None:
        raise ValueError(f"unknown mask {spec!r}; allowed: {', '.join(NAMED_MASKS)} or a PNG file")
    mask[:, hidden[0], hidden[1]] = False
    return mask


@attrs.define(eq=False)
class Inpaint(Condition):
    """Fill in the unknown entries of ``known`` where ``mask`` is False (Song et al. 2021, appendix I).

    After every corrector step (at ``t``) and predictor step (at the time it ended at) the known entries are
    replaced by a fresh draw of the forward process at that time, ``alpha(t) known + std(t) z``; the unknown
    entries evolve under the unconditional score. (Drawing the known entries' noise as one coherent forward path
    instead, a Brownian bridge to ``known``, was measured and is worse: the unknown entries then lock onto that
    one path's noise, 10.7 nats of log-density gap against 0.35 on the 64-D oracle.) Works for any tensor data (imputation): ``known`` has the
    sample shape ``(B, ...)`` or one sample's shape, ``mask`` broadcasts against it (True or 1 = known). The
    output holds ``known`` exactly where the mask is set.

    This replacement method is approximate: the unknown entries see a noised observation at each time, not the
    clean one, so for multimodal data the weights of the modes that fit the observation are only approximately
    the exact conditional's (see docs/guides/controllable-generation.md for measured figures).
    """

    known: torch.Tensor
    mask: torch.Tensor

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.known, torch.Tensor) or not self.known.is_floating_point():
            raise TypeError(f"known must be a floating-point tensor, got {type(self.known).__name__}")
        check_finite("known", self.known)
        self.mask = _as_mask(self.mask, self.known)

    def check(self, shape: tuple[int, ...], sde: SDE) -> None:
        for name, value in (("known", self.known), ("mask", self.mask)):
            full = tuple(value.shape) == shape or tuple(value.shape) == shape[1:]
            try:
                fits = full or torch.broadcast_shapes(value.shape, shape) == torch.Size(shape)
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(f"inpaint: {name} of shape {tuple(value.shape)} does not fit samples of shape "
                                 f"{shape} (give one sample's shape or the batch's)")

    def _parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.known.to(device=x.device, dtype=x.dtype).expand_as(x),
                self.mask.to(device=x.device).expand_as(x))

    def constrain(self, x, x_mean, t, *, sde, generator=None, state=None, after=Hook.PREDICTOR):
        known, mask = self._parts(x)
        alpha = batch_broadcast(sde.marginal_scale(t).to(x.dtype), x)
        level = batch_broadcast(sde.noise_level(t).to(x.dtype), x)  # std / alpha
        noised = alpha * (known + level * randn_like(x, generator))
        return torch.where(mask, noised, x), torch.where(mask, alpha * known, x_mean)

    def finalize(self, x, state=None):
        known, mask = self._parts(x)
        return torch.where(mask, known, x)


def decorrelated_colour_basis(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An orthonormal 3x3 basis of RGB whose first vector is the grey axis ``(1, 1, 1) / sqrt(3)`` (rows are the
    basis vectors). Being orthonormal, it keeps isotropic forward noise isotropic, so inpainting in it is valid."""
    basis = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=torch.float64)
    return (basis / basis.norm(dim=1, keepdim=True)).to(dtype)


def _to_basis(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bj...->bi...", basis.to(device=x.device, dtype=x.dtype), x)


def _from_basis(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ji,bj...->bi...", basis.to(device=x.device, dtype=x.dtype), x)


class Colorize(Condition):
    """Colour a grey image: RGB samples whose channel mean is ``grey`` (Song et al. 2021, appendix I).

    Inpainting in :func:`decorrelated_colour_basis`: the grey axis is the known entry, the two colour axes are
    filled in, by replacement (``method="inpaint"``) or by sequential Monte Carlo (``method="inpaint_smc"``,
    see :class:`SMCInpaint`; far more faithful where the grey level leaves colours ambiguous). ``grey`` is
    ``(B, 1, H, W)``, ``(1, H, W)`` or ``(H, W)``, in the data's units (the mean of R, G and B).
    """

    def __init__(self, grey: torch.Tensor, method: str = "inpaint") -> None:
        if not isinstance(grey, torch.Tensor) or not grey.is_floating_point():
            raise TypeError(f"grey must be a floating-point tensor, got {type(grey).__name__}")
        if grey.dim() < 2:
            raise ValueError(f"grey must be an image (H, W), (1, H, W) or (B, 1, H, W), got shape {tuple(grey.shape)}")
        if grey.dim() == 2 or (grey.dim() == 3 and grey.shape[0] != 1):
            grey = grey.unsqueeze(-3)
        if grey.shape[-3] != 1:
            raise ValueError(f"grey must have one channel, got shape {tuple(grey.shape)}")
        methods = {"inpaint": Inpaint, "inpaint_smc": SMCInpaint}
        if method not in methods:
            raise ValueError(f"unknown colorize method {method!r}; allowed: {', '.join(methods)}")
        zeros = torch.zeros_like(grey)
        known = torch.cat([grey * 3**0.5, zeros, zeros], dim=-3)  # grey * (1, 1, 1) is sqrt(3) grey on the grey axis
        mask = torch.zeros(3, 1, 1, dtype=torch.bool)
        mask[0] = True
        self.grey, self.method = grey, method
        self.inner = methods[method](known, mask)

    @property
    def supports_resampling(self) -> bool:  # type: ignore[override]
        return self.inner.supports_resampling

    @property
    def supports_stateful_predictors(self) -> bool:  # type: ignore[override]
        return self.inner.supports_stateful_predictors

    def init_state(self, grid):
        return self.inner.init_state(grid)

    def __repr__(self) -> str:
        return f"Colorize(grey of shape {tuple(self.grey.shape)}, method={self.method!r})"

    def check(self, shape, sde):
        if len(shape) != 4 or shape[1] != 3:
            raise ValueError(f"colorize needs RGB image samples (B, 3, H, W), got {shape}")
        self.inner.check(shape, sde)

    def constrain(self, x, x_mean, t, *, sde, generator=None, state=None, after=Hook.PREDICTOR):
        basis = decorrelated_colour_basis()
        y, y_mean = self.inner.constrain(_to_basis(x, basis), _to_basis(x_mean, basis), t, sde=sde,
                                         generator=generator, state=state, after=after)
        return _from_basis(y, basis), _from_basis(y_mean, basis)

    def finalize(self, x, state=None):
        basis = decorrelated_colour_basis()
        return _from_basis(self.inner.finalize(_to_basis(x, basis), state), basis)


@attrs.define(eq=False)
class SMCInpaint(Inpaint):
    """Inpainting by sequential Monte Carlo (SMCDiff, Trippe et al. 2022): exact as the particles grow.

    The known entries follow one path of the forward process (drawn backward in time as a Brownian bridge to
    ``known``); the batch is a population of particles for each condition, weighted after every predictor step
    by the density of the path's next known values under the particle's reverse-SDE transition and resampled
    when the effective sample size drops below ``ess_threshold`` of the particles. This removes the bias of
    :class:`Inpaint` toward the wrong mode weights; the returned samples of one condition are equally weighted
    but correlated (resampled). Needs a stochastic predictor (Euler-Maruyama, reverse diffusion).

    ``known`` and ``mask`` have one sample's shape (the whole batch is one population) or a leading dimension
    ``G`` that divides the batch: condition ``g`` gets the particles ``g*K .. (g+1)*K - 1`` (``K = B / G``).
    """

    ess_threshold: float = attrs.field(default=0.5, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
    supports_resampling: ClassVar[bool] = False  # one forward path and one weight per step
    supports_stateful_predictors: ClassVar[bool] = False  # resampling reorders the particles

    def check(self, shape, sde):
        for name, value in (("known", self.known), ("mask", self.mask)):
            if tuple(value.shape[1:]) == shape[1:] and value.dim() == len(shape):
                if shape[0] % value.shape[0]:
                    raise ValueError(f"inpaint_smc: {name} holds {value.shape[0]} conditions, which do not divide "
                                     f"the batch of {shape[0]} particles")
            elif tuple(value.shape) != shape[1:]:
                raise ValueError(f"inpaint_smc: {name} of shape {tuple(value.shape)} does not fit samples of shape "
                                 f"{shape} (give one sample's shape or (conditions, ...))")
        if sde.diffusion_depends_on_x():
            raise ValueError("inpaint_smc needs an SDE whose diffusion does not depend on x")

    def _groups(self, x: torch.Tensor) -> int:
        return self.known.shape[0] if self.known.dim() == x.dim() else 1

    def _per_particle(self, value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if value.dim() == x.dim():
            value = value.repeat_interleave(x.shape[0] // value.shape[0], dim=0)
        return value.to(device=x.device).expand_as(x)

    def _parts(self, x):
        return self._per_particle(self.known.to(x.dtype), x), self._per_particle(self.mask, x)

    def init_state(self, grid: GridPosition) -> SMCState:
        return SMCState(grid)

    def constrain(self, x, x_mean, t, *, sde, generator=None, state=None, after=Hook.PREDICTOR):
        if not isinstance(state, SMCState):
            raise ValueError("inpaint_smc runs inside Sampler.sample (it keeps its particles' weights there)")
        known, mask = self._parts(x)
        groups = self._groups(x)
        level = sde.noise_level(t[:1]).to(x.dtype)  # one time for the whole batch
        previous = state.path
        group_shape = (groups, *x.shape[1:])
        group_known = self.known.to(device=x.device, dtype=x.dtype).expand(group_shape)
        noise = lambda: torch.randn(group_shape, dtype=x.dtype, device=x.device, generator=generator)
        if previous is None:
            path = group_known + level * noise()
        elif torch.equal(previous[0], level):
            path = previous[1]
        else:  # x_s | x_t, x_0 under the forward process: a Brownian bridge in the scaled variable x / alpha
            ratio = (level / previous[0]).clamp(max=1.0) ** 2
            path = group_known + ratio * (previous[1] - group_known) + level * torch.sqrt(1 - ratio) * noise()
        state.path = (level, path)
        alpha = sde.marginal_scale(t[:1]).to(x.dtype)
        target = alpha * self._per_particle(path, x)
        log_w = state.log_w if state.log_w is not None else torch.zeros(x.shape[0], dtype=torch.float64,
                                                                        device=x.device)
        grid = state.grid
        if after == Hook.PREDICTOR:
            if torch.equal(x, x_mean):
                raise IncompatibleComponentsError("inpaint_smc weights particles by the predictor's transition "
                                                  "noise; this predictor is deterministic (use euler or "
                                                  "reverse_diffusion)")
            t_prev = torch.full_like(t, grid.times[grid.index].item())
            _, g = sde.sde(x, t_prev)
            var = batch_broadcast((g.to(torch.float64) ** 2) * abs(grid.t_next - grid.t), x)
            sq = torch.where(mask, (target - x_mean).to(torch.float64) ** 2 / var, torch.zeros((), dtype=torch.float64))
            log_w = log_w - 0.5 * sq.reshape(x.shape[0], -1).sum(1)
        x, x_mean = torch.where(mask, target, x), torch.where(mask, alpha * known, x_mean)
        x, x_mean, log_w = _resample(x, x_mean, log_w, groups, self.ess_threshold, generator)
        state.log_w, state.generator = log_w, generator
        return x, x_mean

    def finalize(self, x, state=None):
        if isinstance(state, SMCState) and state.log_w is not None:  # equally weighted output: one last resampling
            x, _, _ = _resample(x, x, state.log_w, self._groups(x), 1.0 + 1e-9, state.generator)
        return super().finalize(x)


@attrs.define
class SMCState:
    """What :class:`SMCInpaint` keeps for one sampling call.

    Attributes:
        grid: The call's grid and the step being taken (the weights need the step's length).
        path: ``(noise level, draw)``: the known entries' forward path at the last time they were drawn.
        log_w: The particles' log-weights (``None`` before the first predictor step).
        generator: The sampling call's generator, which the last resampling (in ``finalize``) draws from too, so
            the same generator state gives the same samples.
    """

    grid: GridPosition
    path: tuple[torch.Tensor, torch.Tensor] | None = None
    log_w: torch.Tensor | None = None
    generator: torch.Generator | None = None


def _resample(x, x_mean, log_w, groups, threshold, generator):
    """Multinomial resampling within each group of particles whose effective sample size fell below
    ``threshold`` times its size; weights of resampled groups are reset to equal."""
    k = x.shape[0] // groups
    lw = log_w.reshape(groups, k)
    w = torch.softmax(lw, dim=1)
    ess = 1.0 / (w**2).sum(1)
    low = ess < threshold * k
    if not low.any():
        return x, x_mean, log_w
    picks = torch.multinomial(w[low].float().cpu(), k, replacement=True,
                              generator=generator if generator is not None and generator.device.type == "cpu"
                              else None).to(x.device)
    index = torch.arange(x.shape[0], device=x.device).reshape(groups, k)
    index[low] = torch.gather(index[low], 1, picks)
    index = index.reshape(-1)
    lw = lw.clone()
    lw[low] = 0.0
    return x[index], x_mean[index], lw.reshape(-1)


@attrs.define(eq=False)
class ClassifierGuidance(Condition):
    """Sample ``p(x | y)`` by adding ``scale * grad_x log p_t(y | x)`` of a noise-conditional classifier to the
    score (Song et al. 2021, section 5; Dhariwal & Nichol 2021 call ``scale > 1`` guidance).

    Attributes:
        classifier: ``classifier(x, t) -> logits (B, n_classes)``, e.g. :func:`scoreflow.classifier_fn` of a
            trained :class:`~scoreflow.NoiseConditionalClassifier`, or a mixture's exact
            :meth:`~scoreflow.GaussianMixture.label_classifier`.
        labels: The wanted class: one int for every sample, or one per sample.
        scale: Guidance scale (1: the exact conditional score for an exact classifier).
    """

    classifier: NoisyClassifierFn
    labels: int | torch.Tensor
    scale: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if not callable(self.classifier):
            raise TypeError(f"classifier must be callable as classifier(x, t), got {type(self.classifier).__name__}")
        labels = torch.as_tensor(self.labels)
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.dim() > 1 or (labels < 0).any():
            raise ValueError(f"labels must be a non-negative int or a 1-D tensor of them, got {self.labels!r}")
        self.labels = labels.long()

    def check(self, shape, sde):
        if self.labels.dim() == 1 and len(self.labels) != shape[0]:
            raise ValueError(f"classifier_guidance: {len(self.labels)} labels for a batch of {shape[0]} samples")

    def log_prob(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``log p_t(y | x)`` per sample (from the classifier's logits)."""
        logits = self.classifier(x, t)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"classifier returned {got}, expected logits of shape ({x.shape[0]}, n_classes)")
        labels = self.labels.to(x.device).expand(x.shape[0])
        if int(labels.max()) >= logits.shape[1]:
            raise ValueError(f"label {int(labels.max())} is not a class of a classifier with {logits.shape[1]} "
                             f"classes (allowed: 0..{logits.shape[1] - 1})")
        return torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)

    def gradient(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``grad_x log p_t(y | x)``."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.log_prob(xg, t).sum(), xg)
        return grad.to(x.dtype)

    def guide(self, score, sde):
        if self.scale == 0:
            return score

        def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return score(x, t) + self.scale * self.gradient(x, t)

        return guided
