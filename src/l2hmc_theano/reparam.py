"""Non-centring of a PyMC3 model's location-scale groups where the prior dominates: the
geometry of funnels and centred hierarchies, which no constant mass matrix (and no constant
step size) fits.

A free variable theta from a location-scale family (Normal, StudentT, Cauchy, Laplace,
Logistic: :data:`LOCATION_SCALE`) with location mu and scale sigma, whose sigma depends on
other free variables phi (a funnel; a centred hierarchy's group effects), is sampled as
theta_t, with, elementwise and for constant weights lam in [0, 1],

    theta = lam mu + sigma^lam theta_t.

lam = 1 is the non-centred parameterization (theta_t from the standard member of the family
a priori: N(0, 1), a Student-t of the same nu, ...), lam = 0 the centred one (theta_t = theta).  Since lam is constant and mu and sigma depend on phi only,
the map u = (phi, theta_t) -> x = (phi, theta) is triangular, with

    log|det dx/du| = sum(lam log sigma),       U_u(u) = U(x(u)) - sum(lam log sigma),

and sampling U_u in u is exact for U in x.  A ``GaussianRandomWalk`` whose sigma depends on
other free variables is non-centred the same way in its increments (its innovations):
s_0 stays, s_t = s_0 + sum_{k <= t} (lam mu + sigma^lam e_k) with e_k sampled; the map is
triangular with the same log|det| over the increments, and one lam for all of them.

Which members to non-centre follows the
classical advice (Papaspiliopoulos, Roberts & Skold 2007; Betancourt & Girolami 2015):
those the prior informs more than the data.  The weights start at 1 and are fitted to
points of the chains (:meth:`NonCentring.fit`): r, the median over points of sigma^2 h with
h = -d2 log p / d theta_i2 + d2 log prior / d theta_i2 the data's precision (for a Normal
prior, -d2 log p / d theta_i2 - 1 / sigma_i^2; one Hessian-vector product of the density and
one of the prior per group, with that group's indicator: exact when the members are
conditionally independent given phi, as a hierarchy's are), and lam = 1 where r < 1, else 0
(:func:`weights_from_ratio`).

Why 0/1 and not the partial weights of a Normal-Normal model, 1 / (1 + r): a fractional lam
leaves theta_t a prior mean (1 - lam) mu / sigma^lam that runs off as sigma -> 0, a new
funnel (``benchmarks/real_models.py`` compares the choices in min ESS per gradient).  The weights are Theano shared variables:
fitting them recompiles nothing.
"""
import numpy as np

from ._theano import change_flags, floatX, theano, tt

__all__ = ["NonCentring", "find_groups"]

#: Points of a cloud used to fit the weights (evenly spaced through the cloud).
FIT_POINTS = 64
#: The location-scale families non-centred, by class name: (location attribute, scale attribute).
LOCATION_SCALE = {"Normal": ("mu", "sigma"), "StudentT": ("mu", "sigma"), "Cauchy": ("alpha", "beta"),
                  "Laplace": ("mu", "b"), "Logistic": ("mu", "s")}


def _ancestors(variables):
    return set(theano.graph.basic.ancestors(variables))


def find_groups(model, chosen):
    """The variables among ``chosen`` (free variables) whose scale depends on another of ``chosen``:
    from a family of :data:`LOCATION_SCALE`, ``(var, location, scale)``; a ``pm.GaussianRandomWalk``
    (:func:`is_walk`), ``(var, mu, sigma)`` of its increments (as its logp reads them: time-varying
    ones from their second element).  In ``model.free_RVs`` order."""
    import pymc3 as pm

    chosen = set(chosen)
    groups = []
    for var in model.free_RVs:
        dist = getattr(var, "distribution", None)
        name = type(dist).__name__
        if var not in chosen:
            continue
        if is_walk(var):
            location, scale = dist._mu_and_sigma(dist.mu, dist.sigma)
        elif name in LOCATION_SCALE and type(dist) is getattr(pm, name):
            location, scale = (tt.as_tensor_variable(getattr(dist, a)) for a in LOCATION_SCALE[name])
        else:
            continue
        parents = _ancestors([scale]) & chosen
        if parents and var not in parents:
            groups.append((var, location, scale))
    return groups


def is_walk(var):
    """Whether the free variable ``var`` is a ``pm.GaussianRandomWalk`` of at least one dimension."""
    import pymc3 as pm

    return type(getattr(var, "distribution", None)) is pm.GaussianRandomWalk and var.ndim > 0


def flat_slices(flat, variables, vmap):
    """``{variable: its slice of the flat vector`` ``flat`` ``(dim,)``, in its shape and dtype}``
    (symbolic), for ``variables`` laid out as ``vmap`` (an ``ArrayOrdering``'s)."""
    return {var: tt.reshape(flat[slc], shp).astype(dtype) for var, (_, slc, shp, dtype) in zip(variables, vmap)}


def weights_from_ratio(r):
    """lam of the data-to-prior precision ratios ``r`` >= 0: 1 (non-centred) where r < 1, else 0."""
    return (np.asarray(r) < 1.0).astype(floatX)


class NonCentring:
    """The map between a model's flat vector x and the sampling coordinates u, for the
    groups of :func:`find_groups`.

    Parameters
    ----------
    model : pymc3.Model
    ordering : ``pymc3.blocking.ArrayOrdering`` of the flat vector's variables.
    shared : dict free variable -> value, for the model's free variables not in the vector.

    Attributes
    ----------
    groups : ``[(var, mu, sigma)]``, parents before children.
    weights : ``{var name: shared lam}``, each of the variable's shape.
    """

    def __init__(self, model, ordering, shared):
        self.model = model
        self.ordering = ordering
        self.shared = dict(shared)
        self._variables = self._vars()
        shapes = {var: shp for var, (_, _, shp, _) in zip(self._variables, ordering.vmap)}
        self.groups = find_groups(model, self._variables)
        self.walks = {var for var, _, _ in self.groups if is_walk(var)}
        self.weights = {
            var.name: theano.shared(np.ones(shapes[var], dtype=floatX), name=f"noncentring/{var.name}/lam")
            for var, _, _ in self.groups
        }
        self._compiled = {}
        self.announce = False  # say what compiles (set by L2HMCSampler.train with a progress bar)

    def _vars(self):
        by_name = {v.name: v for v in self.model.free_RVs}
        return [by_name[name] for name, _, _, _ in self.ordering.vmap]

    def __bool__(self):
        return bool(self.groups)

    @property
    def names(self):
        """The non-centred variables' names."""
        return [var.name for var, _, _ in self.groups]

    def _slices(self, flat):
        return flat_slices(flat, self._variables, self.ordering.vmap)

    def _lam_mu_log_sigma(self, var, mu, sigma, values):
        """lam, mu and log sigma of one group (of a walk: of its increments, lam from the second
        element), at model-space ``values`` of its parents."""
        mu = theano.clone(mu, values, strict=False)
        sigma = theano.clone(sigma, values, strict=False)
        lam = self.weights[var.name]
        return (lam[1:] if var in self.walks else lam), mu, tt.log(sigma)

    # -- symbolic maps of one flat vector -----------------------------------------------
    def model_values(self, u):
        """``(values, log_jacobian)``: ``values`` maps every free variable (and the shared
        ones) to its model-space value given the flat sampling vector ``u`` ``(dim,)``;
        ``log_jacobian`` = log|det dx/du|, a scalar."""
        values = dict(self.shared)
        slices = self._slices(u)
        groups = {var: (mu, sigma) for var, mu, sigma in self.groups}
        log_jacobian = tt.zeros((), dtype=floatX)
        for var in self.model.free_RVs:  # parents before children: mu, sigma see model-space parents
            if var not in slices:
                continue
            if var in groups:
                lam, mu, log_sigma = self._lam_mu_log_sigma(var, *groups[var], values)
                u_var = slices[var][1:] if var in self.walks else slices[var]
                value = lam * mu + tt.exp(lam * log_sigma) * u_var
                log_jacobian = log_jacobian + tt.sum(tt.ones_like(value) * lam * log_sigma)
                if var in self.walks:  # value: the increments; the walk starts at its first element
                    start = tt.shape_padleft(slices[var][0])  # (1, ...), broadcastable
                    value = tt.concatenate([start, start + tt.cumsum(value, axis=0)], axis=0)
                values[var] = value.astype(slices[var].dtype)
            else:
                values[var] = slices[var]
        return values, log_jacobian

    def flat_model(self, u):
        """The model's flat vector x(u) ``(dim,)`` and log|det dx/du|, of a sampling vector ``u``."""
        values, log_jacobian = self.model_values(u)
        return tt.concatenate([tt.flatten(values[var]).astype(floatX) for var in self._variables]), log_jacobian

    def flat_sampling(self, x):
        """The sampling vector u(x) ``(dim,)`` of a model flat vector ``x`` (the inverse map)."""
        values = dict(self.shared)
        values.update(self._slices(x))
        groups = {var: (mu, sigma) for var, mu, sigma in self.groups}
        parts = []
        for var in self._variables:
            if var in groups:
                lam, mu, log_sigma = self._lam_mu_log_sigma(var, *groups[var], values)
                value = values[var]
                if var in self.walks:
                    steps = (value[1:] - value[:-1] - lam * mu) * tt.exp(-lam * log_sigma)
                    parts.append(tt.concatenate([tt.flatten(value[:1]), tt.flatten(steps)]))
                else:
                    parts.append(tt.flatten((value - lam * mu) * tt.exp(-lam * log_sigma)))
            else:
                parts.append(tt.flatten(values[var]))
        return tt.concatenate([p.astype(floatX) for p in parts])

    def batch_model(self, U):
        """Symbolic: the model's flat vectors ``(batch, dim)`` and log|det dx/du| ``(batch,)`` of
        sampling vectors ``U`` ``(batch, dim)``."""
        from .vectorize import vectorize

        flat = tt.vector("flat", dtype=floatX)
        x, log_jacobian = vectorize(list(self.flat_model(flat)), flat, U)
        return x, log_jacobian * tt.ones_like(U[:, 0])

    # -- numpy maps of batches --------------------------------------------------------------
    def _batched(self, key, build):
        if key not in self._compiled:
            from .sampler import compiling
            from .vectorize import vectorize

            what = {"to_model": "the non-centring's map to the model", "to_sampling": "the non-centring's inverse map"}
            with change_flags(compute_test_value="off"), compiling(what.get(key, key), self.announce):
                flat = tt.vector("flat", dtype=floatX)
                batch = tt.matrix("batch", dtype=floatX)
                outputs = vectorize(build(flat), flat, batch)
                self._compiled[key] = theano.function([batch], outputs, name=f"noncentring_{key}")
        return self._compiled[key]

    def to_model(self, u):
        """Model flat vectors ``(n, dim)`` and log|det dx/du| ``(n,)`` of sampling vectors ``u`` ``(n, dim)``."""
        x, log_jacobian = self._batched("to_model", lambda f: list(self.flat_model(f)))(np.asarray(u, dtype=floatX))
        return x, np.broadcast_to(log_jacobian, (len(x),))

    def to_sampling(self, x):
        """Sampling vectors ``(n, dim)`` of model flat vectors ``x`` ``(n, dim)``."""
        return self._batched("to_sampling", lambda f: [self.flat_sampling(f)])(np.asarray(x, dtype=floatX))[0]

    # -- weights -----------------------------------------------------------------------
    def _ratio_function(self):
        """x ``(dim,)`` (model space) -> per group, sigma^2 h with h = -d2 log p / d theta2 + d2 log
        prior / d theta2 (theta's shape): the data's precision, in units of the prior scale's."""
        if "ratio" not in self._compiled:
            from .sampler import compiling

            with change_flags(compute_test_value="off"), compiling("the non-centring's curvature", self.announce):
                x = tt.vector("x_model", dtype=floatX)
                values = dict(self.shared)
                values.update(self._slices(x))
                logp = theano.clone(self.model.logpt, values, strict=False).astype(floatX)
                grad = tt.grad(logp, x)
                outputs = []
                slots = {var: (slc, shp) for var, (_, slc, shp, _) in zip(self._variables, self.ordering.vmap)}
                for var, _, sigma in self.groups:
                    slc, shp = slots[var]
                    indicator = np.zeros(self.ordering.size, dtype=floatX)
                    indicator[slc] = 1.0
                    hv = tt.grad(tt.sum(grad * indicator), x)[slc].reshape(shp)
                    prior = tt.sum(theano.clone(var.distribution.logp(var), values, strict=False)).astype(floatX)
                    prior_hv = tt.grad(tt.sum(tt.grad(prior, x) * indicator), x)[slc].reshape(shp)
                    sigma = theano.clone(sigma, values, strict=False)
                    data_hv = prior_hv - hv
                    outputs.append((data_hv[1:] if var in self.walks else data_hv) * tt.sqr(sigma))
                self._compiled["ratio"] = theano.function([x], outputs, name="noncentring_ratio")
        return self._compiled["ratio"]

    def fit(self, x):
        """Set each group's weights from r, the median of sigma^2 h over the model flat vectors
        ``x`` ``(n, dim)`` (up to :data:`FIT_POINTS` of them, evenly spaced), by
        :func:`weights_from_ratio`.  Returns :meth:`weight_values`."""
        x = np.asarray(x, dtype=floatX)
        x = x[np.all(np.isfinite(x), axis=1)]
        if not self.groups or len(x) == 0:
            return {}
        x = x[np.unique(np.linspace(0, len(x) - 1, min(len(x), FIT_POINTS)).astype(int))]
        ratio = self._ratio_function()
        per_point = [ratio(row) for row in x]
        for k, (var, _, _) in enumerate(self.groups):
            values = np.array([p[k] for p in per_point])
            walk = var in self.walks
            with np.errstate(invalid="ignore"):  # a walk: one ratio for all its increments
                r = np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=None if walk else 0)
            r = np.where(np.isfinite(r), np.maximum(r, 0.0), 0.0)
            if walk:  # an inner element's prior precision is 2 / sigma^2 (two increments hold it)
                lam = np.zeros(self.weights[var.name].get_value().shape, dtype=floatX)
                lam[1:] = weights_from_ratio(r / 2.0)
            else:
                lam = weights_from_ratio(r)
            self.weights[var.name].set_value(np.asarray(lam, dtype=floatX))
        return self.weight_values()

    def weight_values(self):
        """``{name: lam}`` as numpy arrays."""
        return {name: lam.get_value() for name, lam in self.weights.items()}

    def set_weights(self, values):
        """Set the weights from ``{name: array}`` (e.g. a saved sampler's); raises
        ``ValueError`` on a missing group, a wrong shape or a weight outside [0, 1]."""
        for name, shared in self.weights.items():
            if name not in values or np.shape(values[name]) != shared.get_value().shape:
                raise ValueError(f"non-centring: the weights of {name!r} are missing or have the wrong shape.")
            value = np.asarray(values[name], dtype=floatX)
            if not (np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1))):
                raise ValueError(f"non-centring: the weights of {name!r} must be in [0, 1].")
            shared.set_value(value)
