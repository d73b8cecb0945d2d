"""The paper's table maths: learning curves over seeds, maximum over evaluation points, bootstrap CIs.

The DVDN paper's metric (Table 1): at each evaluation point take the mean greedy return over the
evaluation episodes of each seed, then the mean over seeds; report the maximum over evaluation points
of that mean, with a 95 % bootstrap confidence interval over seeds at that point. Cells whose CI
overlaps the best cell's CI "match the best" (the paper's asterisk).
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from scipy import stats


class Curves(NamedTuple):
    """Per-seed learning curves of one (task, algorithm) cell.

    returns: [seeds, points] mean greedy return of each seed at each evaluation point.
    env_steps: [points] env steps per seed at each point (mean over seeds).
    """

    returns: np.ndarray
    env_steps: np.ndarray


class Cell(NamedTuple):
    """One table cell: the maximum over evaluation points of the mean over seeds, with its CI."""

    max_mean: float
    ci_low: float  # 95 % bootstrap CI over seeds of the mean at the best point
    ci_high: float
    best_point: int  # index of the best evaluation point
    best_env_steps: int
    final_mean: float  # mean over seeds at the last evaluation point
    final_iqm: float  # interquartile mean over seeds at the last point (rliable style)
    seeds: int


def curves_from_records(records: list[dict]) -> Curves:
    """Curves from metrics records (one per evaluation point and seed); seeds must share points."""
    seeds = sorted({r["seed"] for r in records})
    points = sorted({r["point"] for r in records})
    table = np.full((len(seeds), len(points)), np.nan)
    steps = np.zeros((len(seeds), len(points)))
    for r in records:
        s, p = seeds.index(r["seed"]), points.index(r["point"])
        table[s, p], steps[s, p] = r["eval_return"], r["env_steps"]
    if np.isnan(table).any():
        missing = [points[p] for p in np.unique(np.argwhere(np.isnan(table))[:, 1])]
        raise ValueError(f"evaluation points {missing} are missing for some seeds; is a run unfinished?")
    return Curves(table, steps.mean(0))


def bootstrap_ci(samples: np.ndarray, level: float = 0.95, resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of `samples` [n]; a single sample gives (x, x)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size < 2 or np.ptp(samples) == 0:
        return float(samples.mean()), float(samples.mean())
    result = stats.bootstrap((samples,), np.mean, confidence_level=level, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def difference_p(a: np.ndarray, b: np.ndarray, resamples: int = 20_000, seed: int = 0) -> float:
    """Two-sided permutation p-value of the difference of the means of independent samples a and b
    (exact, over every relabelling, when there are at most `resamples` of them)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    if min(a.size, b.size) < 2:  # scipy needs two per sample; one run of a system: enumerate by hand
        pooled, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
        diffs = [abs(pooled[list(i)].mean() - np.delete(pooled, list(i)).mean())
                 for i in itertools.combinations(range(pooled.size), a.size)]
        return float(np.mean(np.array(diffs) >= observed * (1 - 1e-12)))
    result = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), n_resamples=resamples,
                                    alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def iqm(samples: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50 % (rliable's robust aggregate)."""
    return float(stats.trim_mean(np.asarray(samples, dtype=np.float64), 0.25))


def cell(curves: Curves, level: float = 0.95) -> Cell:
    """The table cell of one (task, algorithm): max over points of the mean over seeds, and its CI."""
    means = curves.returns.mean(0)
    best = int(np.argmax(means))
    low, high = bootstrap_ci(curves.returns[:, best], level)
    final = curves.returns[:, -1]
    return Cell(float(means[best]), low, high, best, int(curves.env_steps[best]), float(final.mean()),
                iqm(final), curves.returns.shape[0])


def marks(cells: dict[str, Cell]) -> dict[str, str]:
    """The paper's marks per algorithm of one task: "best"; "*" (CI overlaps the best's CI);
    "**" (second in rank, CI not overlapping the best); "" otherwise."""
    ranked = sorted(cells, key=lambda name: cells[name].max_mean, reverse=True)
    best = cells[ranked[0]]
    out = {}
    for rank, name in enumerate(ranked):
        c = cells[name]
        if rank == 0:
            out[name] = "best"
        elif c.ci_high >= best.ci_low and c.ci_low <= best.ci_high:
            out[name] = "*"
        else:
            out[name] = "**" if rank == 1 else ""
    return out
