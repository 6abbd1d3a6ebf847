"""The kinds of group :mod:`l2hmc_theano.reparam` non-centres, each a triangular map from its
sampling coordinates u to the model's value theta given the group's parents (model-space values),
with constant weights lam in [0, 1] of theta's shape:

- :class:`LocationScale` (Normal, StudentT, Cauchy, Laplace, Logistic), elementwise:
  theta = lam mu + sigma^lam u, log|det| = sum(lam log sigma);
- :class:`RandomWalk` (``pm.GaussianRandomWalk``), in its increments: theta_0 = u_0,
  theta_t = theta_0 + sum_{s <= t} (lam_s mu + sigma^lam_s u_s), log|det| = sum_{t >= 1} lam_t log sigma;
- :class:`AutoRegressive1` (``pm.AR1``), in its innovations with one lam in {0, 1}: theta = lam y +
  (1 - lam) u, y_t = k y_{t-1} + s_t u_t, log|det| = lam sum(log s_t);
- :class:`CholeskyNormal` (``pm.MvNormal`` with ``chol`` or ``cov``, rows (n, k) of theta), row by
  row with lam_i in {0, 1}: theta_i = lam_i mu_i + (lam_i L + (1 - lam_i) I) u_i,
  log|det| = sum_i sum_j log(lam_i L_jj + 1 - lam_i).

Each kind also gives r, the data's precision in units of the prior's, from a Hessian-vector
product of the data's log density (``data_hvp(v)``: -d2 log p v + d2 log prior v, theta's shape),
and the weights of r's medians over points (lam = 1, non-centred, where r < 1).
"""
import warnings

import numpy as np

from ._pymc3 import pm
from ._theano import floatX, theano, tt

__all__ = ["LOCATION_SCALE", "find_groups", "is_walk", "Group", "LocationScale", "RandomWalk", "CholeskyNormal",
           "AutoRegressive1"]

#: The location-scale families non-centred, by class name: (location attribute, scale attribute).
LOCATION_SCALE = {"Normal": ("mu", "sigma"), "StudentT": ("mu", "sigma"), "Cauchy": ("alpha", "beta"),
                  "Laplace": ("mu", "b"), "Logistic": ("mu", "s")}
#: The largest k of a ``pm.MvNormal`` non-centred (its triangular solve is unrolled k^2 / 2 times).
MAX_MVNORMAL_K = 12


def weights_from_ratio(r):
    """lam of the data-to-prior precision ratios ``r`` >= 0: 1 (non-centred) where r < 1, else 0."""
    return (np.asarray(r) < 1.0).astype(floatX)


def _median(values, axis):
    """The median of ``values`` (points first) over ``axis``, ignoring non-finite ones; 0 where none."""
    values = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():  # all-NaN slices
        warnings.simplefilter("ignore", RuntimeWarning)
        r = np.nanmedian(values, axis=axis)
    return np.where(np.isfinite(r), np.maximum(r, 0.0), 0.0)


class Group:
    """What every kind shares: by default the model's own prior term, and any weights in [0, 1]."""

    def log_prior(self, u, value, lam, values):
        """theta's prior log density at ``value`` = forward(u), or None for the model's own term."""
        return None

    def check(self, lam):
        """A reason the weights ``lam`` cannot be used, or None."""
        return None


class LocationScale(Group):
    """theta = lam mu + sigma^lam u, elementwise (``mu``, ``sigma`` broadcast to theta's ``shape``)."""

    def __init__(self, var, mu, sigma, shape):
        self.var, self.mu, self.sigma, self.shape = var, mu, sigma, tuple(shape)

    def parameters(self, values):
        """The group's parameters at model-space ``values`` of its parents."""
        return [theano.clone(p, values, strict=False) for p in (self.mu, self.sigma)]

    def forward(self, u, lam, values):
        """``(theta, log|det dtheta/du|)`` of ``u`` (theta's shape)."""
        mu, sigma = self.parameters(values)
        value = lam * mu + tt.exp(lam * tt.log(sigma)) * u
        return value, tt.sum(tt.ones_like(value) * lam * tt.log(sigma))

    def inverse(self, value, lam, values):
        """u of theta ``value``."""
        mu, sigma = self.parameters(values)
        return (value - lam * mu) * tt.exp(-lam * tt.log(sigma))

    def ratio(self, data_hvp, values):
        """Per member, sigma^2 times the data's precision (theta's shape)."""
        _, sigma = self.parameters(values)
        return data_hvp(np.ones(self.shape, dtype=floatX)) * tt.sqr(sigma)

    def weights(self, ratios):
        """lam from the ratios at points ``(points, ...)``: per member, of their median."""
        return weights_from_ratio(_median(ratios, 0))


class RandomWalk(LocationScale):
    """A Gaussian random walk non-centred in its increments: theta_0 = u_0 and theta_t = theta_0 +
    sum_{s <= t} (lam_s mu + sigma^lam_s u_s); ``mu``, ``sigma`` are the increments' (from the
    second element, as the walk's logp reads time-varying ones).  lam_0 is unused."""

    def forward(self, u, lam, values):
        steps, log_jacobian = super().forward(u[1:], lam[1:], values)
        start = tt.shape_padleft(u[0])  # (1, ...), broadcastable
        return tt.concatenate([start, start + tt.cumsum(steps, axis=0)], axis=0), log_jacobian

    def inverse(self, value, lam, values):
        steps = super().inverse(value[1:] - value[:-1], lam[1:], values)
        return tt.concatenate([value[:1], steps], axis=0)

    def ratio(self, data_hvp, values):
        return super().ratio(data_hvp, values)[1:]

    def weights(self, ratios):
        """One lam for every increment, of the median over points and increments, against an
        inner element's prior precision 2 / sigma^2 (two increments hold it)."""
        lam = np.zeros(self.shape, dtype=floatX)
        lam[1:] = weights_from_ratio(_median(ratios, None) / 2.0)
        return lam


def _solve_lower(chol, rhs, k):
    """``rhs`` L^-T for lower-triangular ``chol`` L ``(k, k)`` and rows ``rhs`` ``(n, k)``: forward
    substitution unrolled over the k columns (elementwise operations, which batch)."""
    columns = []
    for i in range(k):
        total = rhs[:, i]
        for j in range(i):
            total = total - chol[i, j] * columns[j]
        columns.append(total / chol[i, i])
    return tt.stack(columns, axis=1)


class CholeskyNormal(Group):
    """Rows theta_i ``(k,)`` of a ``pm.MvNormal`` (theta ``(n, k)`` or ``(k,)``) with covariance
    L L^T: theta_i = lam_i mu_i + (lam_i L + (1 - lam_i) I) u_i, with lam_i in {0, 1} (one weight
    per row, repeated along it)."""

    def __init__(self, var, mu, chol, shape):
        self.var, self.mu, self.chol, self.shape = var, mu, chol, tuple(shape)
        self.k = self.shape[-1]
        self.rows = int(np.prod(self.shape[:-1], dtype=int))

    def parameters(self, values):
        mu = theano.clone(self.mu, values, strict=False)
        return tt.ones(self.shape, dtype=floatX) * mu, theano.clone(self.chol, values, strict=False)

    def _rows(self, a):
        return tt.reshape(a, (self.rows, self.k))

    def _row_lam(self, lam):
        return self._rows(lam)[:, 0].dimshuffle(0, "x")  # (rows, 1), broadcastable

    def _diagonal(self, chol):
        return tt.stack([chol[j, j] for j in range(self.k)])  # (k,), by element: a batched L's batches

    def forward(self, u, lam, values):
        mu, chol = self.parameters(values)
        u_rows, lam_rows = self._rows(u), self._row_lam(lam)
        value = lam_rows * (self._rows(mu) + tt.dot(u_rows, chol.T)) + (1.0 - lam_rows) * u_rows
        diagonal = self._diagonal(chol)
        log_jacobian = tt.sum(tt.log(lam_rows * diagonal + 1.0 - lam_rows))
        return tt.reshape(value, self.shape), log_jacobian

    def inverse(self, value, lam, values):
        mu, chol = self.parameters(values)
        rows, lam_rows = self._rows(value), self._row_lam(lam)
        return tt.reshape(lam_rows * _solve_lower(chol, rows - self._rows(mu), self.k) + (1.0 - lam_rows) * rows,
                          self.shape)

    def log_prior(self, u, value, lam, values):
        """The MvNormal's log density, with the whitened rows read off u where non-centred (so no
        solve with L is left in the graph for them)."""
        mu, chol = self.parameters(values)
        lam_rows = self._row_lam(lam)
        whitened = (lam_rows * self._rows(u)
                    + (1.0 - lam_rows) * _solve_lower(chol, self._rows(value) - self._rows(mu), self.k))
        diagonal = self._diagonal(chol)
        logp = (-0.5 * tt.sum(tt.sqr(whitened)) - self.rows * tt.sum(tt.log(diagonal))
                - 0.5 * self.rows * self.k * np.log(2 * np.pi))
        return tt.switch(tt.all(diagonal > 0), logp, -np.inf)

    def ratio(self, data_hvp, values):
        """Per row, the mean diagonal of L^T H_i L (H_i: the data's precision in row i), one
        Hessian-vector product per column of L."""
        _, chol = self.parameters(values)
        ratio = 0.0
        for c in range(self.k):
            direction = tt.ones((self.rows, 1), dtype=floatX) * chol[:, c]  # (rows, k)
            ratio = ratio + tt.sum(self._rows(data_hvp(tt.reshape(direction, self.shape))) * direction, axis=1)
        return ratio / self.k  # (rows,)

    def weights(self, ratios):
        lam = weights_from_ratio(_median(ratios, 0))  # (rows,)
        return np.repeat(lam[:, None], self.k, axis=1).reshape(self.shape).astype(floatX)

    def check(self, lam):
        rows = np.reshape(lam, (self.rows, self.k))
        if not (np.all((rows == 0) | (rows == 1)) and np.all(rows == rows[:, :1])):
            return "must be 0 or 1, the same along each row"
        return None


def _autoregress(v, k, length):
    """y_t = k y_{t-1} + v_t along axis 0 (y_0 = v_0) for ``v`` ``(length, ...)`` and a scalar ``k``:
    y_t = sum_{s <= t} k^(t-s) v_s, by ceil(log2 length) doublings (each adds k^d y_{t-d}), so
    it batches (no scan) and stays stable for |k| < 1."""
    y, d = v, 1
    while d < length:
        y = y + tt.pow(k, d) * tt.concatenate([tt.zeros_like(y[:d]), y[:-d]], axis=0)
        d *= 2
    return y


class AutoRegressive1(Group):
    """A ``pm.AR1`` (x_0 ~ N(0, sigma^2 / (1 - k^2)), x_t ~ N(k x_{t-1}, sigma^2), sigma = tau_e^-1/2,
    along axis 0) non-centred in its innovations, with one weight lam in {0, 1}: theta = lam y +
    (1 - lam) u, y_t = k y_{t-1} + s_t u_t (s_0 = sigma / sqrt(1 - k^2), s_t = sigma),
    log|det| = lam sum(log s)."""

    def __init__(self, var, k, tau_e, shape):
        self.var, self.k, self.tau_e, self.shape = var, k, tau_e, tuple(shape)

    def parameters(self, values):
        """k, and the log scales s ``(shape[0], 1, ...)`` of the innovations."""
        k = theano.clone(self.k, values, strict=False)
        log_sigma = -0.5 * tt.log(theano.clone(self.tau_e, values, strict=False))
        log_scales = tt.concatenate([tt.stack([log_sigma - 0.5 * tt.log1p(-tt.sqr(k))]),
                                     tt.alloc(log_sigma, self.shape[0] - 1)])
        return k, tt.reshape(log_scales, (self.shape[0],) + (1,) * (len(self.shape) - 1), ndim=len(self.shape))

    @staticmethod
    def _lam(lam):
        return tt.flatten(lam)[0]  # one weight, repeated over theta

    def forward(self, u, lam, values):
        k, log_scales = self.parameters(values)
        lam = self._lam(lam)
        value = lam * _autoregress(tt.exp(log_scales) * u, k, self.shape[0]) + (1.0 - lam) * u
        return value, lam * tt.sum(tt.ones_like(u) * log_scales)

    def inverse(self, value, lam, values):
        k, log_scales = self.parameters(values)
        lam = self._lam(lam)
        innovations = tt.concatenate([value[:1], value[1:] - k * value[:-1]], axis=0)
        return lam * innovations * tt.exp(-log_scales) + (1.0 - lam) * value

    def ratio(self, data_hvp, values):
        """Per element, the data's precision in units of an inner element's prior precision
        (1 + k^2) / sigma^2."""
        k = theano.clone(self.k, values, strict=False)
        tau_e = theano.clone(self.tau_e, values, strict=False)
        return data_hvp(np.ones(self.shape, dtype=floatX)) / (tau_e * (1.0 + tt.sqr(k)))

    def weights(self, ratios):
        """One lam, of the median over points and elements."""
        return np.full(self.shape, weights_from_ratio(_median(ratios, None)), dtype=floatX)

    def check(self, lam):
        lam = np.asarray(lam)
        if not (np.all((lam == 0) | (lam == 1)) and np.all(lam == lam.flat[0])):
            return "must be all 0 or all 1"
        return None


def _ancestors(variables):
    return set(theano.graph.basic.ancestors(variables))


def is_walk(var):
    """Whether the free variable ``var`` is a ``pm.GaussianRandomWalk`` of at least one dimension."""
    return type(getattr(var, "distribution", None)) is pm.GaussianRandomWalk and var.ndim > 0


def _group(var, shape):
    """The group of the free variable ``var`` (theta's ``shape``) if it is of a non-centred kind,
    as ``(group, its scale)``, else None."""
    dist = getattr(var, "distribution", None)
    name = type(dist).__name__
    if getattr(var, "total_size", None) is not None:
        return None
    if is_walk(var):
        mu, sigma = dist._mu_and_sigma(dist.mu, dist.sigma)
        return RandomWalk(var, mu, sigma, shape), sigma
    if name in LOCATION_SCALE and type(dist) is getattr(pm, name):
        mu, sigma = (tt.as_tensor_variable(getattr(dist, a)) for a in LOCATION_SCALE[name])
        return LocationScale(var, mu, sigma, shape), sigma
    if (type(dist) is pm.AR1 and len(shape) >= 1 and shape[0] > 1
            and tt.as_tensor_variable(dist.k).ndim == 0 and tt.as_tensor_variable(dist.tau_e).ndim == 0):
        tau_e = tt.as_tensor_variable(dist.tau_e)
        return AutoRegressive1(var, tt.as_tensor_variable(dist.k), tau_e, shape), tau_e
    if (type(dist) is pm.MvNormal and getattr(dist, "_cov_type", None) in ("chol", "cov")
            and len(shape) in (1, 2) and 0 < shape[-1] <= MAX_MVNORMAL_K):
        return CholeskyNormal(var, dist.mu, dist.chol_cov, shape), dist.chol_cov
    return None


def find_groups(model, chosen, shapes=None):
    """The groups (:class:`LocationScale`, :class:`RandomWalk`, :class:`AutoRegressive1`,
    :class:`CholeskyNormal`) of the
    variables among ``chosen`` (free variables) whose scale depends on another of ``chosen``, in
    ``model.free_RVs`` order.  ``shapes``: ``{var: shape}`` (default: the test point's)."""
    chosen = set(chosen)
    groups = []
    for var in model.free_RVs:
        if var not in chosen:
            continue
        shape = shapes[var] if shapes is not None else np.shape(model.test_point[var.name])
        found = _group(var, shape)
        if found is None:
            continue
        group, scale = found
        parents = _ancestors([scale]) & chosen
        if parents and var not in parents:
            groups.append(group)
    return groups
