"""Cluster-bootstrap statistics over prompts and noise slots (pure numpy).

Every quantity of the protocol is a ratio of sums over a (prompt, slot) grid: a rate is hits /
samples, a mean disruption is the sum of D over (sample, concept) records / their count. The
bootstrap resamples prompts and slots independently with replacement (two-way cluster
bootstrap: samples of one prompt, or of one noise slot, are not independent) and recomputes
the ratio on the resampled grid. Paired differences use the same resample for both methods.
"""
import numpy as np


def resamples(n_prompts, n_slots, b, seed):
    """b pairs of (prompt indices, slot indices), drawn once and shared by every statistic."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, n_prompts, n_prompts), rng.integers(0, n_slots, n_slots)) for _ in range(b)]


def ratio(num, den):
    """sum(num) / sum(den) over a grid (NaN when den sums to 0)."""
    d = float(np.sum(den))
    return float(np.sum(num)) / d if d else float("nan")


def _grid(m, p, s):
    return m[..., p, :][..., s]


def interval(values, level=0.95):
    v = np.asarray([x for x in values if np.isfinite(x)])
    if not len(v):
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))


def ratio_ci(num, den, draws, level=0.95):
    """(estimate, low, high) of sum(num)/sum(den); num and den are (P, S) grids."""
    est = ratio(num, den)
    lo, hi = interval([ratio(_grid(num, p, s), _grid(den, p, s)) for p, s in draws], level)
    return est, lo, hi


def paired_diff_ci(num_a, den_a, num_b, den_b, draws, level=0.95):
    """(estimate, low, high) of ratio(a) - ratio(b) on the same samples."""
    est = ratio(num_a, den_a) - ratio(num_b, den_b)
    vals = [ratio(_grid(num_a, p, s), _grid(den_a, p, s)) - ratio(_grid(num_b, p, s), _grid(den_b, p, s))
            for p, s in draws]
    lo, hi = interval(vals, level)
    return est, lo, hi


def slope(x, y):
    """Least-squares slope of y on x over the finite pairs (NaN with fewer than 3)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return float("nan")
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def slope_ci(x, num, den, draws, level=0.95):
    """Slope of per-concept ratios num_c/den_c against x_c; num, den are (C, P, S) grids."""
    def per_concept(n, d):
        return [ratio(n[c], d[c]) for c in range(len(x))]
    est = slope(x, per_concept(num, den))
    lo, hi = interval([slope(x, per_concept(_grid(num, p, s), _grid(den, p, s))) for p, s in draws], level)
    return est, lo, hi
