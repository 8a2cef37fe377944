"""How a calibration table is fitted: two methods over held-out (true, estimated) ages.

Both fill the same table (per grid point of estimated age: interval offsets and P(minor)), so
serving applies either one the same way (`Calibration.apply`). Pure numpy.

- `predicted_age`: for each estimated age, the residuals (true - estimated) of the held-out
  faces estimated nearest to it. Its intervals cover the stated share of the faces *estimated*
  a given age, not of the faces who *are* a given age: where the model over-ages a group
  (teenagers), that group sits in the tail of its estimated-age neighbours and is covered far
  less than the rest.
- `true_age`: for each true age, the distribution of the estimates of the held-out faces of
  (about) that age. The interval is the Neyman confidence belt inverted: every age whose
  central `coverage` range of estimates contains this estimate. By construction it covers the
  stated share of faces of EVERY true age (up to sampling error), teenagers included, and its
  overall coverage is the same share. P(minor) is Bayes' rule over the same per-age error
  distributions with the held-out faces' own age mix as the prior: P(a | estimate) is
  proportional to prior(a) * density of that estimate among faces aged a.
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("true_age", "predicted_age")


def local_residual_table(true: np.ndarray, pred: np.ndarray, grid: np.ndarray, *,
                         coverage: float, threshold: float, neighbours: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`predicted_age` method: (low_offset, high_offset, p_under) per grid point.

    `neighbours` held-out estimates nearest each grid point (ties broken by position:
    deterministic) give the residual quantiles and a kernel-smoothed P(true < threshold).
    """
    k = int(min(neighbours, true.size))
    residual = true - pred
    nearest = np.argpartition(np.abs(pred[None, :] - grid[:, None]), k - 1, axis=1)[:, :k]
    local = residual[nearest]  # (grid points, k)
    tail = (1.0 - coverage) / 2.0
    # Plotting positions p(k+1) (split-conformal ranks): plain sample quantiles of k points
    # cover (k-1)/(k+1) of the intended share, 79.2 % instead of 80 % for k = 200.
    low_offset, high_offset = np.quantile(local, [tail, 1.0 - tail], axis=1, method="weibull")
    return low_offset, high_offset, smoothed_cdf(local, threshold - grid)


def true_age_table(true: np.ndarray, pred: np.ndarray, grid: np.ndarray, *,
                   coverage: float, legal_age: float, whole_years: bool, neighbours: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`true_age` method: (low_offset, high_offset, p_under) per grid point (module docstring).

    Ages are one-year bins (label a means a..a+1 for continuous labels, exactly a for whole
    years). Each bin's error distribution comes from at least `neighbours` held-out faces
    nearest it in true age (whole ages at the window's edge included), as residuals
    (estimate - true) so a window a few years wide does not blur the trend of the estimates.
    """
    centre_shift = 0.0 if whole_years else 0.5
    ages = np.arange(math.floor(true.min()), math.floor(true.max()) + 1, dtype=np.float64)
    centres = ages + centre_shift
    error = pred - true
    tail = (1.0 - coverage) / 2.0
    est_low, est_high = np.empty(ages.size), np.empty(ages.size)
    density = np.empty((ages.size, grid.size))
    k = int(min(neighbours, true.size))
    for index, centre in enumerate(centres):
        distance = np.abs(true - centre)
        window = error[distance <= np.partition(distance, k - 1)[k - 1]]
        lo, hi = np.quantile(window, [tail, 1.0 - tail], method="weibull")
        est_low[index], est_high[index] = centre + lo, centre + hi
        density[index] = _smoothed_pdf(window, grid - centre)
    age_low, age_high = _belt_hull(grid, est_low, est_high, centres)
    prior = np.bincount(np.floor(true - ages[0]).astype(int), minlength=ages.size)
    joint = prior[:, None] * density  # (ages, grid): prior(a) * f(estimate | a)
    minor = (ages < legal_age)[:, None]
    total = joint.sum(axis=0)
    p_under = np.where(total > 0, (joint * minor).sum(axis=0) / np.where(total > 0, total, 1),
                       np.where(grid < legal_age, 1.0, 0.0))
    return age_low - grid, age_high - grid, p_under


BELT_STEP = 0.1  # years between the ages the belt is read at


def _belt_hull(grid: np.ndarray, est_low: np.ndarray, est_high: np.ndarray,
               centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Youngest and oldest age whose central range of estimates holds each grid estimate.

    The hull of the Neyman confidence set: where the belt is not monotone (the model's bias
    drops at some age) the set may have gaps, and the hull covers at least the stated share
    of every age. An estimate no fitted age explains takes the monotone belt's inversion,
    extended with slope 1 beyond the fitted ages.
    """
    ages = np.arange(centres[0], centres[-1] + BELT_STEP / 2, BELT_STEP)
    lo, hi = np.interp(ages, centres, est_low), np.interp(ages, centres, est_high)
    inside = (lo[None, :] <= grid[:, None]) & (grid[:, None] <= hi[None, :])  # (grid, ages)
    found = inside.any(axis=1)
    youngest = ages[np.argmax(inside, axis=1)]
    oldest = ages[ages.size - 1 - np.argmax(inside[:, ::-1], axis=1)]
    # Monotone fallback; the tiny slope breaks exact ties so the belt can be inverted.
    rising_low = np.maximum.accumulate(est_low) + 1e-6 * centres
    rising_high = np.maximum.accumulate(est_high) + 1e-6 * centres
    return (np.where(found, youngest, _invert(grid, rising_high, centres)),
            np.where(found, oldest, _invert(grid, rising_low, centres)))


def _invert(estimate: np.ndarray, belt: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The age whose belt edge equals each estimate, slope 1 beyond the fitted ages."""
    span = 200.0
    xs = np.concatenate([[belt[0] - span], belt, [belt[-1] + span]])
    ys = np.concatenate([[centres[0] - span], centres, [centres[-1] + span]])
    return np.interp(estimate, xs, ys)


def _bandwidth(samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Silverman's rule-of-thumb kernel standard deviation, at least a quarter year."""
    k = samples.shape[axis]
    spread = np.std(samples, axis=axis, ddof=1)
    q75, q25 = np.percentile(samples, [75, 25], axis=axis)
    scale = np.minimum(spread, (q75 - q25) / 1.349)
    scale = np.where(scale > 0, scale, spread)
    return np.maximum(0.9 * scale * k ** (-0.2), 0.25)


def smoothed_cdf(samples: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per row, P(sample < at[row]) under a kernel density estimate of the row's samples.

    A logistic kernel (its CDF is numpy's own; scipy is not a dependency) with the standard
    deviation of Silverman's rule-of-thumb bandwidth.
    """
    logistic_scale = _bandwidth(samples, axis=1) * math.sqrt(3) / math.pi  # same std
    z = (at[:, None] - samples) / logistic_scale[:, None]
    return (0.5 * (1.0 + np.tanh(z / 2.0))).mean(axis=1)  # logistic CDF, overflow-free


def _smoothed_pdf(samples: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Kernel density of 1-D `samples` at each point of `at` (logistic kernel, as above)."""
    scale = float(_bandwidth(samples)) * math.sqrt(3) / math.pi
    z = np.abs(at[:, None] - samples[None, :]) / scale
    e = np.exp(-z)  # logistic pdf e^-|z| / (1 + e^-|z|)^2, overflow-free
    return (e / (1.0 + e) ** 2).mean(axis=1) / scale
