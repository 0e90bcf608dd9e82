"""Exact answers for testing and benchmarking: an isotropic Gaussian mixture.

Under any linear SDE with ``x_t = alpha(t) x_0 + std(t) z`` (VE: ``alpha = 1``) a
mixture ``sum_k w_k N(mu_k, s_k^2 I)`` stays a mixture,
``p_t = sum_k w_k N(alpha mu_k, (alpha^2 s_k^2 + std^2) I)``, so its density and
score are closed-form at every ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import torch

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE


class GaussianMixture:
    """``sum_k w_k N(mu_k, s_k^2 I)`` with closed-form perturbed densities and scores.

    Args:
        means: ``(K, *event_shape)`` component means.
        stds: ``(K,)`` isotropic component standard deviations (or one float).
        weights: ``(K,)`` mixture weights (normalised here); uniform by default.
    """

    def __init__(
        self,
        means: torch.Tensor | Sequence,
        stds: torch.Tensor | Sequence[float] | float,
        weights: torch.Tensor | Sequence[float] | None = None,
    ) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.dim() < 2:
            raise ValueError(f"means must be (K, *event_shape), got shape {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float64).expand(k).clone()
        weights = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (k,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum, got {weights.tolist()}")
        if (stds <= 0).any():
            raise ValueError(f"stds must be positive, got {stds.tolist()}")
        self.means = means
        self.stds = stds
        self.weights = weights / weights.sum()

    @classmethod
    def ring(cls, n_modes: int = 8, radius: float = 4.0, std: float = 0.25,
             weights: Sequence[float] | None = None) -> GaussianMixture:
        """``n_modes`` 2-D Gaussians evenly spaced on a circle."""
        angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
        means = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)
        return cls(means, std, weights)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(self.means.shape[1:])

    @property
    def dim(self) -> int:
        """Number of scalar entries in one sample."""
        return int(self.means[0].numel())

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact samples and their component labels."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn((n, *self.event_shape), dtype=torch.float64, generator=generator)
        x = self.means[labels] + self.stds[labels].reshape(-1, *[1] * len(self.event_shape)) * noise
        return x.to(dtype), labels

    def _scale_and_var(self, t: torch.Tensor | None, sde: SDE | None, like: torch.Tensor):
        """``alpha`` (B,) and component variances (B, K) of ``p_t``."""
        var0 = self.stds.to(like.device) ** 2
        if t is None:
            return torch.ones(like.shape[0], dtype=torch.float64, device=like.device), var0[None].expand(like.shape[0], -1)
        if sde is None:
            raise ValueError("a time t needs the sde that perturbs the data")
        t = t.to(device=like.device, dtype=torch.float64)
        alpha = sde.marginal_scale(t)
        _, std = sde.marginal_prob(torch.zeros(t.shape[0], 1, dtype=torch.float64, device=like.device), t)
        return alpha, alpha[:, None] ** 2 * var0[None] + std[:, None] ** 2

    def _logits(self, x: torch.Tensor, t, sde):
        # squared distances by the matmul identity: memory O(B K), not O(B K D)
        xf = x.reshape(x.shape[0], -1).to(torch.float64)
        mu = self.means.to(x.device).reshape(self.means.shape[0], -1)
        alpha, var = self._scale_and_var(t, sde, x)
        cross = xf @ mu.T
        d2 = (xf**2).sum(1, keepdim=True) - 2 * alpha[:, None] * cross + alpha[:, None] ** 2 * (mu**2).sum(1)[None]
        d2 = d2.clamp_min(0)
        log_norm = -0.5 * xf.shape[1] * torch.log(2 * math.pi * var) - d2 / (2 * var)
        return torch.log(self.weights.to(x.device))[None] + log_norm, xf, mu, alpha, var

    def log_prob(self, x: torch.Tensor, t: torch.Tensor | None = None, sde: SDE | None = None) -> torch.Tensor:
        """``log p_t(x)`` per sample (``t=None``: the data density ``p_0``), float64."""
        logits, *_ = self._logits(x, t, sde)
        return torch.logsumexp(logits, dim=1)

    def score(self, x: torch.Tensor, t: torch.Tensor | None = None, sde: SDE | None = None) -> torch.Tensor:
        """``grad_x log p_t(x)`` with ``x``'s shape and dtype."""
        logits, xf, mu, alpha, var = self._logits(x, t, sde)
        resp = torch.softmax(logits, dim=1) / var
        s = alpha[:, None] * (resp @ mu) - xf * resp.sum(1, keepdim=True)
        return s.to(x.dtype).reshape(x.shape)

    def denoiser(self, x: torch.Tensor, t: torch.Tensor, sde: SDE) -> torch.Tensor:
        """The exact denoiser ``E[x_0 | x_t = x]`` under ``sde``: each component's Gaussian posterior mean
        ``mu_k + alpha v_k (x - alpha mu_k) / (alpha^2 v_k + std^2)``, weighted by its responsibility."""
        logits, xf, mu, alpha, var = self._logits(x, t, sde)
        resp = torch.softmax(logits, dim=1)  # (B, K)
        gain = alpha[:, None] * self.stds.to(x.device)[None] ** 2 / var  # (B, K)
        post = (resp * (1 - alpha[:, None] * gain)) @ mu + (resp * gain).sum(1, keepdim=True) * xf
        return post.to(x.dtype).reshape(x.shape)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Most probable component of each sample under ``p_0``."""
        logits, *_ = self._logits(x, None, None)
        return logits.argmax(dim=1)

    def score_model(self, sde: SDE):
        """A callable ``score(x, t)`` giving the exact score of ``p_t`` under ``sde``."""

        def exact_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.score(x, t, sde)

        return exact_score

    def conditional_score_model(self, sde: SDE, groups: torch.Tensor | Sequence[int] | None = None):
        """The exact class-conditional score model of the labels ``groups[k]`` (default: one class per component):
        ``model(x, t, class_labels=None)`` is ``grad_x log p_t(x | y)`` for each sample's label and the
        unconditional score for ``NO_CLASS`` (-1) or no labels, like a network trained with label dropout;
        ``model.num_classes`` declares it class-conditional (classifier-free guidance)."""
        groups = self._groups(groups)
        classes = [self.given_label(c, groups) for c in range(int(groups.max()) + 1)]
        mixture = self

        class ExactConditionalScore:
            num_classes = len(classes)

            def __call__(self, x: torch.Tensor, t: torch.Tensor,
                         class_labels: torch.Tensor | None = None) -> torch.Tensor:
                out = mixture.score(x, t, sde)
                if class_labels is None:
                    return out
                labels = class_labels.to(x.device).expand(x.shape[0])
                if ((labels < -1) | (labels >= len(classes))).any():
                    raise ValueError(f"class labels must lie in 0..{len(classes) - 1} or be -1 (no class), "
                                     f"got {labels.tolist()}")
                for c, part in enumerate(classes):
                    rows = labels == c
                    if rows.any():
                        out[rows] = part.score(x[rows], t[rows], sde)
                return out

        return ExactConditionalScore()

    def _groups(self, groups: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
        k = len(self.weights)
        if groups is None:
            return torch.arange(k)
        groups = torch.as_tensor(groups)
        if groups.shape != (k,) or groups.is_floating_point() or (groups < 0).any():
            raise ValueError(f"groups must give a non-negative class label to each of the {k} components, "
                             f"got {groups.tolist()}")
        return groups.long()

    def label_classifier(self, sde: SDE, groups: torch.Tensor | Sequence[int] | None = None):
        """The exact noise-conditional classifier ``(x, t) -> log p_t(y | x)`` (logits ``(B, n_classes)``) of
        the class labels ``groups[k]`` of the components (default: each component is its own class)."""
        groups = self._groups(groups)
        n_classes = int(groups.max()) + 1

        def exact_classifier(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            logits, *_ = self._logits(x, t, sde)
            # log-sum-exp per class without underflow: subtract the row maximum first
            top = logits.max(dim=1, keepdim=True).values
            summed = torch.zeros(x.shape[0], n_classes, dtype=logits.dtype, device=logits.device)
            summed = summed.index_add(1, groups.to(x.device), (logits - top).exp())
            return (summed.log() + top).to(x.dtype)

        return exact_classifier

    def given_label(self, label: int, groups: torch.Tensor | Sequence[int] | None = None) -> GaussianMixture:
        """``p(x | y = label)``: the components of that class, reweighted."""
        groups = self._groups(groups)
        keep = groups == int(label)
        if not keep.any():
            raise ValueError(f"no component has label {label!r}; labels: {sorted(set(groups.tolist()))}")
        return GaussianMixture(self.means[keep], self.stds[keep], self.weights[keep])

    def given_entries(self, mask: torch.Tensor, values: torch.Tensor) -> GaussianMixture:
        """``p(x_unknown | x_known = values)``, a mixture over the entries where ``mask`` (event-shaped, True =
        known) is False, flattened: isotropic components factorise, so component ``k``'s weight becomes
        ``w_k N(values; mu_k,known, s_k^2 I)`` and its unknown part stays ``N(mu_k,unknown, s_k^2 I)``."""
        mask = torch.as_tensor(mask, dtype=torch.bool).reshape(-1)
        values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
        if mask.numel() != self.dim or values.numel() != self.dim:
            raise ValueError(f"mask and values need one entry per dimension ({self.dim}), got "
                             f"{mask.numel()} and {values.numel()}")
        if mask.all() or not mask.any():
            raise ValueError("the mask must mark some entries known and some unknown")
        mu = self.means.reshape(len(self.weights), -1)
        d2 = ((mu[:, mask] - values[mask]) ** 2).sum(1)
        n_known = int(mask.sum())
        log_w = torch.log(self.weights) - 0.5 * n_known * torch.log(2 * math.pi * self.stds**2) - d2 / (2 * self.stds**2)
        return GaussianMixture(mu[:, ~mask], self.stds, torch.softmax(log_w, 0))

    def entropy_estimate(self, n: int = 200_000, *, generator: torch.Generator | None = None) -> float:
        """Monte-Carlo estimate of ``E_p0[log p0(x)]`` (the mean log-density of exact samples)."""
        x, _ = self.sample(n, generator=generator, dtype=torch.float64)
        return float(self.log_prob(x).mean())


@attrs.frozen
class MixtureReport:
    """How close samples are to a Gaussian mixture.

    ``weight_tv``: total variation between sampled and true mode weights;
    ``spread_ratio``: RMS distance to the assigned mode over its exact value;
    ``logp_gap``: ``E_p0[log p0] - mean log p0(samples)`` (0 for exact samples).
    """

    weight_tv: float
    spread_ratio: float
    logp_gap: float


def mixture_report(gm: GaussianMixture, x: torch.Tensor, reference_logp: float) -> MixtureReport:
    """Compare samples ``x`` with the mixture ``gm`` (see :class:`MixtureReport`)."""
    labels = gm.assign(x)
    weights = torch.bincount(labels, minlength=len(gm.weights)).double() / len(x)
    tv = 0.5 * float((weights - gm.weights).abs().sum())
    dist2 = ((x.double().reshape(len(x), -1) - gm.means[labels].reshape(len(x), -1)) ** 2).sum(1)
    expected = (gm.stds[labels] ** 2 * gm.dim).mean()
    spread = float((dist2.mean() / expected).sqrt())
    gap = reference_logp - float(gm.log_prob(x).mean())
    return MixtureReport(tv, spread, gap)
