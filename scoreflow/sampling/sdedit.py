"""SDEdit (Meng et al. 2022): edit images by noising them to a sampler's start time and sampling back, in one or
more passes (each pass starts from the last one's result, SDEdit's ``K``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import torch

from scoreflow.sampling.predictor_corrector import PredictorCorrectorSampler
from scoreflow.sampling.trajectory import TrajectorySolverSampler

if TYPE_CHECKING:
    from scoreflow.models.base import ScoreModel
    from scoreflow.sde.base import SDE


@attrs.frozen
class SDEditResult:
    """The images after each pass (the last is the result) and the network evaluations of all passes."""

    passes: tuple[torch.Tensor, ...]
    nfe: int

    @property
    def samples(self) -> torch.Tensor:
        """The images after the last pass."""
        return self.passes[-1]


def sdedit(sampler: PredictorCorrectorSampler | TrajectorySolverSampler, model: ScoreModel, sde: SDE,
           images: torch.Tensor, *, generators: Sequence[torch.Generator | None], progress: bool = False
           ) -> SDEditResult:
    """``images`` (in the model's data convention) edited by SDEdit, one pass per generator: each pass noises the
    last result by the forward process to the sampler's ``start_time`` and samples back from there (with the
    sampler's condition, e.g. :class:`~scoreflow.Inpaint` holding the pixels to keep: SDEdit's masked variant).

    Example: ``sdedit(Sampler(start_time=t0, ...), model, sde, x, generators=[torch.Generator().manual_seed(k)
    for k in range(3)]).samples``.
    """
    if not isinstance(sampler, (PredictorCorrectorSampler, TrajectorySolverSampler)):
        raise TypeError(f"sdedit needs a sampler that starts from images (PredictorCorrectorSampler or "
                        f"TrajectorySolverSampler), got {type(sampler).__name__}")
    if len(generators) == 0:
        raise ValueError("sdedit needs one generator per pass (at least one; None draws from torch's global one)")
    x, nfe, passes = images, 0, []
    for generator in generators:
        result = sampler.sample(model, sde, tuple(images.shape), images=x, generator=generator, progress=progress)
        x, nfe = result.samples, nfe + result.nfe
        passes.append(x)
    return SDEditResult(tuple(passes), nfe)
