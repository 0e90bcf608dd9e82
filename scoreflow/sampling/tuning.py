"""Time schedules tuned to one model and one sampler.

``tune_schedule`` draws a few hundred prior samples and solves the probability-flow ODE from them
accurately (dopri5, tight tolerances): the teacher. For each requested number of steps it starts from
the best of three grids (``karras``, ``log_sigma``, and the GITS grid of Chen et al. 2024: dynamic
programming over a fine grid with the cost of one Euler step between teacher states), then moves the
interior times one at a time in the log of the noise level (a pattern search with shrinking moves),
keeping a move when the sampler's own end points get closer to the teacher's (mean RMS distance over
the warm-up draws). The objective is the sampler's global error, so multistep and single-step methods
each get the grid that suits them; it needs a deterministic (ODE) sampler.

Inside a ``torch.distributed`` process group (``torchrun``) every rank draws the same warm-up draws and keeps
its share (``rank::world_size``): it solves the teacher and runs each trial on that share only, and the errors
are summed across ranks, so every rank takes the same decisions and ends with the same grids (give every rank a
generator with the same seed, as ``scoreflow tune-schedule`` does).

The grids are stored as JSON (``tuned-schedules.json`` in a run folder) and used through the registered
schedule ``"tuned"``: ``Sampler(predictor="ipndm", num_steps=4, schedule="tuned",
schedule_options={"path": RUN})``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from scoreflow.errors import TunedScheduleError
from scoreflow.process_group import reduce_over_ranks, world
from scoreflow.sampling.schedules import Schedule, check_times
from scoreflow.sde.base import final_time
from scoreflow.validators import positive_int, positive_number

if TYPE_CHECKING:
    from scoreflow.sde.base import SDE

TUNED_FILE = "tuned-schedules.json"
FORMAT = 1


@attrs.frozen
class TunedGrid:
    """One tuned grid and how much it improved on the starting grids (mean RMS end-point error)."""

    times: torch.Tensor
    error: float
    karras_error: float
    start: str
    evaluations: int


@attrs.frozen
class TuningResult:
    """Grids found by :func:`tune_schedule` for one predictor, keyed by number of steps."""

    predictor: str
    grids: dict[int, TunedGrid]
    teacher_nfe: int
    info: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (float64 times as lists)."""
        grids = {str(n): {"times": g.times.tolist(), "error": g.error, "karras_error": g.karras_error,
                          "start": g.start, "evaluations": g.evaluations} for n, g in sorted(self.grids.items())}
        return {"format": FORMAT, **self.info, "teacher_nfe": self.teacher_nfe, "grids": {self.predictor: grids}}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` (a JSON file, or a run folder: its ``tuned-schedules.json``), keeping the grids it
        already holds for the same SDE and ``eps`` (other predictors, other step counts)."""
        target = schedule_file(path)
        record = self.to_json()
        if target.exists():
            old = _read(target)
            if old.get("sde") == record["sde"] and old.get("eps") == record["eps"]:
                merged = {k: dict(v) for k, v in old["grids"].items()}
                merged.setdefault(self.predictor, {}).update(record["grids"][self.predictor])
                record["grids"] = merged
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, target)
        return target


def _file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / TUNED_FILE if p.is_dir() else p


#: The largest tuned-schedule file read (a real one holds a few grids: kilobytes).
MAX_TUNED_FILE_BYTES = 16 * 2**20


def schedule_file(path: str | os.PathLike[str]) -> Path:
    """The tuned-schedule file ``path`` names (a run folder's ``tuned-schedules.json``), refused unless it is
    absent or a regular file of at most :data:`MAX_TUNED_FILE_BYTES` (a device such as /dev/zero is never read)."""
    target = _file(path)
    if target.exists():
        if not target.is_file():
            raise TunedScheduleError(f"{target} is not a regular file; give a JSON file or a run folder")
        if target.stat().st_size > MAX_TUNED_FILE_BYTES:
            raise TunedScheduleError(f"{target} holds {target.stat().st_size:,} bytes, more than a tuned-schedule "
                                     f"file's limit of {MAX_TUNED_FILE_BYTES:,}")
    return target


def _read(path: Path) -> dict[str, Any]:
    schedule_file(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TunedScheduleError(f"no tuned schedules at {path}: run `scoreflow tune-schedule` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TunedScheduleError(f"cannot read tuned schedules from {path}: {exc}") from None
    grids = data.get("grids") if isinstance(data, dict) else None
    if (data.get("format") if isinstance(data, dict) else None) != FORMAT or not isinstance(grids, dict) or not all(
            isinstance(v, dict) for v in grids.values()):
        raise TunedScheduleError(f"{path} is not a tuned-schedule file of format {FORMAT}")
    return data


def teacher_trajectories(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sde: SDE,
                         x_start: torch.Tensor, times: torch.Tensor, *, rtol: float = 1e-4,
                         atol: float = 1e-4) -> tuple[torch.Tensor, int]:
    """The probability-flow ODE solved from ``x_start`` at ``times[0]`` (dopri5's dense output, with the solvers'
    end-time guard), states at every time."""
    from scoreflow.flow.probability_flow import ProbabilityFlowODE
    from scoreflow.flow.solvers import TorchdiffeqSolver

    with torch.no_grad():
        states, nfe = TorchdiffeqSolver(method="dopri5", rtol=rtol, atol=atol).solve_at(
            ProbabilityFlowODE(sde, score), x_start, times)
    return states, nfe


def euler_costs(states: torch.Tensor, slopes: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """``cost[i, j]``: mean over samples of the RMS error of one Euler step from fine point ``i`` to ``j``
    (``j > i``; ``inf`` elsewhere), all in the scaled variable with noise levels ``levels``."""
    k = len(levels)
    cost = torch.full((k, k), math.inf, dtype=torch.float64)
    for i in range(k - 1):
        ds = (levels[i + 1:] - levels[i]).to(states.dtype).reshape(-1, *[1] * (states.dim() - 1))
        err = states[i + 1:] - states[i] - ds * slopes[i]
        cost[i, i + 1:] = err.flatten(2).pow(2).mean(2).sqrt().mean(1).double()
    return cost


def best_path(cost: torch.Tensor, num_steps: int) -> tuple[list[int], float]:
    """Indices ``0 = k_0 < ... < k_N = K - 1`` minimising the summed ``cost`` over exactly ``num_steps`` jumps."""
    k = cost.shape[0]
    if not 1 <= num_steps <= k - 1:
        raise ValueError(f"num_steps must lie in [1, {k - 1}] for a fine grid of {k} points, got {num_steps}")
    best = torch.full((num_steps + 1, k), math.inf, dtype=torch.float64)
    back = torch.zeros((num_steps + 1, k), dtype=torch.long)
    best[0, 0] = 0.0
    for n in range(1, num_steps + 1):
        totals = best[n - 1][:, None] + cost  # from i (rows) to j (columns)
        best[n], back[n] = totals.min(0)
    path = [k - 1]
    for n in range(num_steps, 0, -1):
        path.append(int(back[n, path[-1]]))
    return path[::-1], float(best[num_steps, k - 1])


def _log_levels(sde: SDE, times: torch.Tensor) -> list[float]:
    return torch.log(sde.noise_level(times.to(torch.float64))).tolist()


def _times_at(sde: SDE, log_levels: list[float], eps: float) -> torch.Tensor:
    times = sde.time_at_noise_level(torch.exp(torch.tensor(log_levels, dtype=torch.float64)))
    times[0], times[-1] = sde.T, eps
    return times


def _teacher(score, sde: SDE, shape: tuple[int, ...], fine: torch.Tensor, generator, device, rtol: float,
             atol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """This rank's warm-up draws, the teacher's end points for them, the Euler cost matrix over every rank's
    draws (:func:`euler_costs`) and the teacher's evaluations."""
    rank, ranks = world()
    if shape[0] < ranks:
        raise ValueError(f"{shape[0]} warm-up draws cannot be shared by {ranks} processes: ask for at least {ranks}")
    x_start = sde.prior_sampling(shape, generator=generator, device=device, dtype=torch.float32)
    x_start = x_start[rank::ranks]  # every rank drew the same draws; each keeps its share
    states, teacher_nfe = teacher_trajectories(score, sde, x_start, fine, rtol=rtol, atol=atol)
    levels, alphas = sde.noise_level(fine), sde.marginal_scale(fine)
    with torch.no_grad():
        slopes = torch.stack([-float(levels[i]) * float(alphas[i]) * score(
            states[i], torch.full((len(x_start),), float(t), dtype=torch.float32, device=device))
            for i, t in enumerate(fine.tolist())])
    teacher_nfe = int(reduce_over_ranks(torch.tensor([teacher_nfe + len(fine)]), "max")[0])
    ys = states / alphas.to(states.dtype).reshape(-1, *[1] * (states.dim() - 1))
    cost = reduce_over_ranks(euler_costs(ys, slopes, levels) * len(x_start)) / shape[0]  # mean over all ranks
    return x_start, states[-1], cost, teacher_nfe


def _fine_steps(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    from scoreflow.validators import check_grid_steps

    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"fine_steps must be a positive integer, got {value!r}")
    check_grid_steps(f"fine_steps={value}", value)


@attrs.frozen(kw_only=True)
class GridSearch:
    """How :func:`tune_schedule` searches, validated when built.

    Attributes:
        eps: Final time of the grids (default: the SDE's ``default_eps``).
        fine_steps: Intervals of the fine ``karras`` grid the teacher is solved on and the GITS start is chosen
            from.
        sweeps: Rounds of the pattern search (each tries every interior time once or twice).
        rtol: Relative tolerance of the teacher's ODE solve.
        atol: Absolute tolerance of the teacher's ODE solve.
    """

    eps: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive_number))
    fine_steps: int = attrs.field(default=128, validator=_fine_steps)
    sweeps: int = attrs.field(default=8, validator=positive_int)
    rtol: float = attrs.field(default=1e-5, validator=positive_number)
    atol: float = attrs.field(default=1e-5, validator=positive_number)


def _tune_grid(n: int, error: Callable[[list[float]], float], sde: SDE, eps: float, fine: torch.Tensor,
               cost: torch.Tensor, sweeps: int) -> TunedGrid:
    """The grid of ``n`` steps: the best start of ``karras``, ``log_sigma`` and GITS (over the ``fine`` grid with
    Euler ``cost``), refined by the pattern search on the trial ``error`` of log noise levels."""
    from scoreflow.sampling.schedules import Karras, LogSigma

    starts = {"karras": _log_levels(sde, Karras()(sde, n, eps)),
              "log_sigma": _log_levels(sde, LogSigma()(sde, n, eps)),
              "gits": _log_levels(sde, fine[best_path(cost, n)[0]])}
    errors = {k: error(v) for k, v in starts.items()}
    start = min(errors, key=errors.get)
    u, best, evaluations = _pattern_search(error, starts[start], errors[start], sweeps)
    return TunedGrid(check_times(_times_at(sde, u, eps), sde), best, errors["karras"], start, evaluations + 3)


def _named_predictor(predictor: Any) -> tuple[str, Any]:
    """``(name, instance)`` of a predictor given by name (built by :func:`scoreflow.create`) or instance."""
    if not isinstance(predictor, str):
        return type(predictor).__name__, predictor
    from scoreflow.plugins import create

    return predictor, create("predictor", predictor)


def _checked_request(shape: Sequence[int], num_steps: int | Sequence[int], fine_steps: int
                     ) -> tuple[tuple[int, ...], list[int]]:
    """The warm-up shape and the wanted step counts, refused before any work if they cannot be tuned."""
    from scoreflow.sampling.protocol import check_shape
    from scoreflow.validators import check_request

    shape = check_shape(shape)
    # the teacher keeps every draw at every fine step three times over (states, scaled states, slopes)
    check_request(f"{shape[0]} warm-up draws of shape {tuple(shape[1:])} at {fine_steps + 1} fine steps",
                  3 * shape[0] * (fine_steps + 1), shape[1:])
    wanted = [num_steps] if isinstance(num_steps, int) else list(num_steps)
    if not wanted or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= fine_steps for n in wanted):
        raise ValueError(f"num_steps must be integers in [1, fine_steps={fine_steps}], got {num_steps!r}")
    return shape, wanted


def tune_schedule(model: Any, sde: SDE, shape: Sequence[int], num_steps: int | Sequence[int], *,
                  predictor: Any, search: GridSearch | None = None,
                  generator: torch.Generator | None = None,
                  progress: Callable[[str], None] | None = None) -> TuningResult:
    """Tune time grids of ``num_steps`` steps for ``predictor`` on ``model`` (see the module docstring).

    Args:
        model: Score network or callable ``score(x, t)``.
        sde: The SDE the model was trained for.
        shape: ``(trajectories, ...)``: how many warm-up draws, of which data shape.
        num_steps: The step count(s) to tune grids for.
        predictor: A deterministic (ODE) predictor (``"ipndm"``, ``"dpmpp_2m"``, ...): an instance, or a registered
            name (resolved by ``sf.create("predictor", name)``; a predictor with options: pass it built).
        search: The search's options (:class:`GridSearch`; default ``GridSearch()``).
        generator: For the warm-up draws; where it lives is where the work runs (default: the model's device).
        progress: Called with a line of text after each grid is tuned.
    """
    from scoreflow.models.base import make_score_fn
    from scoreflow.sampling.protocol import model_device
    from scoreflow.sampling.sampler import Sampler
    from scoreflow.sampling.schedules import Karras

    search = GridSearch() if search is None else search
    if not isinstance(search, GridSearch):
        raise TypeError(f"search must be a GridSearch, got {type(search).__name__}")
    shape, wanted = _checked_request(shape, num_steps, search.fine_steps)
    fine_steps = search.fine_steps
    name, pred = _named_predictor(predictor)
    eps = final_time(sde, search.eps)
    Sampler(predictor=pred, num_steps=max(wanted), eps=eps).check(sde)
    device = model_device(model, generator.device if generator is not None else None)
    score = make_score_fn(model, sde)
    _require_deterministic(pred, score, sde, shape, eps, device)

    fine = Karras()(sde, fine_steps, eps, dtype=torch.float64)
    x_start, target, cost, teacher_nfe = _teacher(score, sde, shape, fine, generator, device, search.rtol,
                                                  search.atol)
    mine = tuple(x_start.shape)

    def error(log_levels: list[float]) -> float:
        times = _times_at(sde, log_levels, eps)
        try:
            res = Sampler(predictor=pred, times=times, denoise=False).sample(score, sde, mine, init=x_start)
            summed = float((res.samples - target).flatten(1).pow(2).mean(1).sqrt().sum())
        except (ValueError, FloatingPointError):  # a grid on which the sampler diverges
            summed = math.inf
        e = float(reduce_over_ranks(torch.tensor([summed], dtype=torch.float64))[0]) / shape[0]  # every rank joins
        return e if math.isfinite(e) else math.inf

    grids: dict[int, TunedGrid] = {}
    for n in wanted:
        grids[n] = grid = _tune_grid(n, error, sde, eps, fine, cost, search.sweeps)
        if progress is not None:
            progress(f"{name}, {n} steps: end-point error {grid.error:.4g} (karras {grid.karras_error:.4g}, "
                     f"started from {grid.start}, {grid.evaluations} trial runs)")
    info = {"sde": repr(sde), "eps": eps, "fine_steps": fine_steps, "trajectories": shape[0], "rtol": search.rtol,
            "atol": search.atol, "sweeps": search.sweeps, "processes": world()[1]}
    return TuningResult(name, grids, teacher_nfe, info)


def steps_for_nfe(predictor: Any, nfe: int, sde: SDE, *, eps: float | None = None) -> int:
    """The most steps ``predictor`` can take within ``nfe`` score evaluations (its final denoising included),
    measured by two probe runs on a trivial score."""
    from scoreflow.sampling.sampler import Sampler

    def gaussian_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # the exact score of N(0, I) data
        _, std = sde.marginal_prob(x, t)
        return -x / (sde.marginal_scale(t) ** 2 + std**2)[:, None]

    def count(n: int) -> int:
        sampler = Sampler(predictor=predictor, num_steps=n, eps=eps)
        return sampler.sample(gaussian_score, sde, (1, 2), generator=torch.Generator().manual_seed(0)).nfe

    a, b = count(4), count(8)
    slope = (b - a) / 4
    intercept = a - 4 * slope
    steps = int((nfe - intercept) // slope) if slope > 0 else 0
    if steps < 1 or count(steps) > nfe:
        raise ValueError(f"{predictor!r} cannot sample within {nfe} evaluations (it needs {int(intercept + slope)} "
                         "for one step)")
    return steps


def _pattern_search(error: Callable[[list[float]], float], u: list[float], best: float,
                    sweeps: int) -> tuple[list[float], float, int]:
    """Move each interior point toward a neighbour by a fraction of the gap; halve the fraction when a
    sweep finds no improvement. The end points stay fixed, and the order of the points is kept."""
    fraction, evaluations = 0.5, 0
    for _ in range(sweeps):
        improved = False
        for k in range(1, len(u) - 1):
            for towards in (k - 1, k + 1):
                candidate = list(u)
                candidate[k] = u[k] + fraction * (u[towards] - u[k])
                value = error(candidate)
                evaluations += 1
                if value < best:
                    u, best, improved = candidate, value, True
                    break
        if not improved:
            fraction /= 2
    return u, best, evaluations


def _require_deterministic(pred, score, sde, shape, eps, device) -> None:
    from scoreflow.sampling.sampler import Sampler

    sampler = Sampler(predictor=pred, num_steps=3, eps=eps)
    x = sde.prior_sampling((2, *shape[1:]), generator=torch.Generator(device).manual_seed(0), device=device)
    a, b = (sampler.sample(score, sde, x.shape, init=x, generator=torch.Generator(device).manual_seed(seed)).samples
            for seed in (1, 2))
    if not torch.equal(a, b):
        raise ValueError(f"tune-schedule needs a deterministic (probability-flow ODE) predictor; {pred!r} draws "
                         "noise, so its end points cannot be matched to the ODE's")


@attrs.define(kw_only=True)
class TunedSchedule(Schedule):
    """Grids found by :func:`tune_schedule`, looked up by predictor and number of steps (registered as
    ``"tuned"``).

    Attributes:
        path: A run folder (its ``tuned-schedules.json``) or such a JSON file.
        predictor: Whose grids to use (may be omitted when the file holds one predictor's grids).
    """

    chooses_start = True  # a grid tuned with a moving start begins below T

    path: str = attrs.field(converter=str)
    predictor: str | None = None
    _grids: dict[str, Any] = attrs.field(init=False, repr=False, eq=False)
    _data: dict[str, Any] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        self._data = _read(_file(self.path))
        tuned = sorted(self._data["grids"])
        if self.predictor is None and len(tuned) == 1:
            self.predictor = tuned[0]
        if self.predictor not in self._data["grids"]:
            raise TunedScheduleError(f"{self.path} has no grids tuned for predictor {self.predictor!r}. "
                                     f"Tuned: {', '.join(tuned) or '(none)'}")
        self._grids = self._data["grids"][self.predictor]

    def available_steps(self) -> list[int]:
        """Step counts this file holds grids for (for :attr:`predictor`)."""
        return sorted(int(n) for n in self._grids)

    def times(self, sde, num_steps, eps, dtype=torch.float64):
        entry = self._grids.get(str(num_steps))
        if entry is None:
            raise TunedScheduleError(
                f"{self.path} has no grid of {num_steps} steps tuned for {self.predictor}. Available: "
                f"{', '.join(map(str, self.available_steps()))} (tune more with `scoreflow tune-schedule`)")
        if repr(sde) != self._data.get("sde"):
            raise TunedScheduleError(f"the grids in {self.path} were tuned for {self._data.get('sde')}, not {sde!r}")
        times = check_times(torch.tensor(entry["times"], dtype=torch.float64), sde)
        if not math.isclose(float(times[-1]), eps, rel_tol=1e-9):
            raise TunedScheduleError(f"the grids in {self.path} end at eps={float(times[-1]):g}, not {eps:g}; "
                                     "sample with that eps or tune again")
        return times
