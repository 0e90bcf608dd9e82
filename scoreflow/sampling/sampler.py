"""The predictor-corrector sampler that composes registered components."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.tensor import check_finite
from scoreflow.errors import IncompatibleComponentsError
from scoreflow.models.base import ScoreModel, make_score_fn
from scoreflow.sampling.base import Corrector, Predictor, TrajectorySolver

if TYPE_CHECKING:
    from scoreflow.plugins import PluginHost
    from scoreflow.sde.base import SDE


@attrs.frozen
class SampleResult:
    """Samples and the number of score-function evaluations (NFE) spent on them."""

    samples: torch.Tensor
    nfe: int


def _positive_eps(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (0 < value < 1):
        raise ValueError(f"eps must lie in (0, 1), got {value!r}")


def check_shape(shape: Any) -> tuple[int, ...]:
    """Validate a sample shape ``(B, ...)`` of positive integers."""
    try:
        dims = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be a sequence of positive integers, got {shape!r}") from None
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
        snr: Signal-to-noise ratio passed to a corrector given by name.
        n_steps: Corrector steps per noise level, for a corrector given by name.
        eps: Final time (sampling stops at ``eps`` to avoid the singular ``t = 0``).
        denoise: Return the last noise-free mean instead of the noisy state.
        predictor_options: Extra keyword options for a predictor given by name.
        corrector_options: Extra keyword options for a corrector given by name.
        host: Plugin host to resolve names with (default: :func:`scoreflow.get_host`).
    """

    predictor: str | Predictor = "euler_maruyama"
    corrector: str | Corrector | None = None
    num_steps: int = attrs.field(default=1000, validator=[attrs.validators.instance_of(int), attrs.validators.gt(0)])
    snr: float = attrs.field(default=0.15, validator=attrs.validators.gt(0))  # the tutorial's value
    n_steps: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    eps: float = attrs.field(default=1e-3, validator=_positive_eps)
    denoise: bool = True
    predictor_options: dict[str, Any] = attrs.field(factory=dict)
    corrector_options: dict[str, Any] = attrs.field(factory=dict)
    host: PluginHost | None = attrs.field(default=None, repr=False, eq=False)
    _predictor: Predictor = attrs.field(init=False, repr=False, eq=False)
    _corrector: Corrector = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        from scoreflow.plugins import get_host

        host = self.host or get_host()
        self._predictor = host.predictors.resolve(self.predictor, **self.predictor_options)
        corrector = "none" if self.corrector is None else self.corrector
        options = {"snr": self.snr, "n_steps": self.n_steps, **self.corrector_options}
        self._corrector = host.correctors.resolve(corrector, **options)
        if isinstance(self._predictor, TrajectorySolver) and self._corrector.nfe_per_step > 0:
            raise IncompatibleComponentsError(
                f"predictor {type(self._predictor).__name__} integrates the whole trajectory and cannot be "
                f"combined with corrector {type(self._corrector).__name__}; use corrector=None"
            )

    @property
    def predictor_obj(self) -> Predictor:
        """The resolved predictor instance."""
        return self._predictor

    @property
    def corrector_obj(self) -> Corrector:
        """The resolved corrector instance."""
        return self._corrector

    def check(self, sde: SDE) -> None:
        """Raise now if this sampler cannot run on ``sde``: a component's declared requirement that
        ``sde`` lacks (:class:`IncompatibleComponentsError` naming it), or ``eps`` not below ``sde.T``.

        :meth:`sample` calls it first; call it yourself to fail before loading data or models.
        """
        self._predictor.check_sde(sde)
        self._corrector.check_sde(sde)
        if self.eps >= sde.T:
            raise ValueError(f"eps={self.eps} must be smaller than the SDE's end time T={sde.T}")

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
        """
        shape = check_shape(shape)
        self.check(sde)
        device = model_device(model, device if device is not None else (generator.device if generator else None))
        score = make_score_fn(model, sde)
        with torch.no_grad():
            x = sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
            if isinstance(self._predictor, TrajectorySolver):
                x, nfe = self._predictor.solve(
                    x, sde.T, self.eps, self.num_steps, sde=sde, score=score, generator=generator
                )
                check_finite("samples", x)
                return SampleResult(x, nfe)
            x, nfe = self._loop(x, sde, score, generator, callback, progress)
        check_finite("samples", x)
        return SampleResult(x, nfe)

    def _loop(self, x, sde, score, generator, callback, progress) -> tuple[torch.Tensor, int]:
        from tqdm.auto import tqdm

        times = torch.linspace(sde.T, self.eps, self.num_steps + 1, dtype=x.dtype, device=x.device)
        nfe, x_mean = 0, x
        steps = tqdm(range(self.num_steps), desc="sampling", disable=not progress, leave=False)
        for i in steps:
            t = times[i].expand(x.shape[0])
            x, x_mean = self._corrector.step(x, t, sde=sde, score=score, generator=generator)
            dt = float(times[i + 1] - times[i])
            x, x_mean = self._predictor.step(x, t, dt, sde=sde, score=score, generator=generator)
            nfe += self._corrector.nfe_per_step + self._predictor.nfe_per_step
            if callback is not None:
                callback({"i": i, "t": times[i + 1], "x": x, "x_mean": x_mean, "nfe": nfe})
        return (x_mean if self.denoise else x), nfe
