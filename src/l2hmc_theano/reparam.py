"""Non-centring of a PyMC3 model's location-scale groups where the prior dominates: the
geometry of funnels and centred hierarchies, which no constant mass matrix (and no constant
step size) fits.

A free variable theta from a location-scale family (Normal, StudentT, Cauchy, Laplace,
Logistic: :data:`.reparam_groups.LOCATION_SCALE`) with location mu and scale sigma, whose sigma depends on
other free variables phi (a funnel; a centred hierarchy's group effects), is sampled as
theta_t, with, elementwise and for constant weights lam in [0, 1],

    theta = lam mu + sigma^lam theta_t.

lam = 1 is the non-centred parameterization (theta_t from the standard member of the family
a priori: N(0, 1), a Student-t of the same nu, ...), lam = 0 the centred one (theta_t = theta).  Since lam is constant and mu and sigma depend on phi only,
the map u = (phi, theta_t) -> x = (phi, theta) is triangular, with

    log|det dx/du| = sum(lam log sigma),       U_u(u) = U(x(u)) - sum(lam log sigma),

and sampling U_u in u is exact for U in x.  The same holds for the other kinds of
:mod:`l2hmc_theano.reparam_groups`, each a triangular map with its own log|det|: a
``GaussianRandomWalk`` in its increments, a ``pm.AR1`` in its innovations, and the rows of a
``pm.MvNormal`` under a Cholesky factor L (theta_i = mu + L u_i where non-centred).

Which members to non-centre follows the
classical advice (Papaspiliopoulos, Roberts & Skold 2007; Betancourt & Girolami 2015):
those the prior informs more than the data.  The weights start at 1 and are fitted to
points of the chains (:meth:`NonCentring.fit`): r, the median over points of sigma^2 h with
h = -d2 log p / d theta_i2 + d2 log prior / d theta_i2 the data's precision (for a Normal
prior, -d2 log p / d theta_i2 - 1 / sigma_i^2; one Hessian-vector product of the density and
one of the prior per group, with that group's indicator: exact when the members are
conditionally independent given phi, as a hierarchy's are), and lam = 1 where r < 1, else 0
(:func:`.reparam_groups.weights_from_ratio`).  Walks and AR(1) processes compare against an inner element's
prior precision, MvNormal rows use the mean diagonal of L^T H L.

Why 0/1 and not the partial weights of a Normal-Normal model, 1 / (1 + r): a fractional lam
leaves theta_t a prior mean (1 - lam) mu / sigma^lam that runs off as sigma -> 0, a new
funnel (``benchmarks/real_models.py`` compares the choices in min ESS per gradient).  The weights are Theano shared variables:
fitting them recompiles nothing.
"""
import numpy as np

from ._theano import change_flags, compile_fixes, floatX, theano, tt
from .progress import compiling
from .reparam_groups import find_groups
from .vectorize import vectorize

__all__ = ["NonCentring", "find_groups"]

#: Points of a cloud used to fit the weights (evenly spaced through the cloud).
FIT_POINTS = 64


def flat_slices(flat, variables, vmap):
    """``{variable: its slice of the flat vector`` ``flat`` ``(dim,)``, in its shape and dtype}``
    (symbolic), for ``variables`` laid out as ``vmap`` (an ``ArrayOrdering``'s)."""
    return {var: tt.reshape(flat[slc], shp).astype(dtype) for var, (_, slc, shp, dtype) in zip(variables, vmap)}


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
    groups : the groups (:mod:`l2hmc_theano.reparam_groups`), parents before children.
    weights : ``{var name: shared lam}``, each of the variable's shape.
    """

    def __init__(self, model, ordering, shared):
        self.model = model
        self.ordering = ordering
        self.shared = dict(shared)
        self._variables = self._vars()
        shapes = {var: shp for var, (_, _, shp, _) in zip(self._variables, ordering.vmap)}
        self.groups = find_groups(model, self._variables, shapes)
        self.weights = {
            g.var.name: theano.shared(np.ones(shapes[g.var], dtype=floatX), name=f"noncentring/{g.var.name}/lam")
            for g in self.groups
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
        return [g.var.name for g in self.groups]

    def _slices(self, flat):
        return flat_slices(flat, self._variables, self.ordering.vmap)

    # -- symbolic maps of one flat vector -----------------------------------------------
    def _values(self, u):
        """``(values, log_jacobian, priors)``: every free variable's (and the shared ones')
        model-space value given the flat sampling vector ``u`` ``(dim,)``, log|det dx/du|, and
        ``{var: its prior log density}`` where a group writes its own."""
        values = dict(self.shared)
        slices = self._slices(u)
        groups = {g.var: g for g in self.groups}
        log_jacobian = tt.zeros((), dtype=floatX)
        priors = {}
        for var in self.model.free_RVs:  # parents before children: the groups see model-space parents
            if var not in slices:
                continue
            if var in groups:
                group, lam = groups[var], self.weights[var.name]
                value, log_det = group.forward(slices[var], lam, values)
                log_jacobian = log_jacobian + log_det
                prior = group.log_prior(slices[var], value, lam, values)
                if prior is not None:
                    priors[var] = prior
                values[var] = value.astype(slices[var].dtype)
            else:
                values[var] = slices[var]
        return values, log_jacobian, priors

    def model_values(self, u):
        """``(values, log_jacobian)``: ``values`` maps every free variable (and the shared
        ones) to its model-space value given the flat sampling vector ``u`` ``(dim,)``;
        ``log_jacobian`` = log|det dx/du|, a scalar."""
        return self._values(u)[:2]

    def logp(self, u):
        """The model's log density at x(u) plus log|det dx/du| (a scalar), of the flat sampling
        vector ``u`` ``(dim,)``: the model's terms, a group's own where it writes one."""
        values, log_jacobian, priors = self._values(u)
        if not priors:
            return theano.clone(self.model.logpt, values, strict=False) + log_jacobian
        terms = [priors[var] if var in priors else theano.clone(var.logpt, values, strict=False)
                 for var in self.model.basic_RVs]
        terms += [theano.clone(p, values, strict=False) for p in self.model.potentials]
        return tt.sum([tt.sum(t) for t in terms]) + log_jacobian

    def flat_model(self, u):
        """The model's flat vector x(u) ``(dim,)`` and log|det dx/du|, of a sampling vector ``u``."""
        values, log_jacobian = self.model_values(u)
        return tt.concatenate([tt.flatten(values[var]).astype(floatX) for var in self._variables]), log_jacobian

    def flat_sampling(self, x):
        """The sampling vector u(x) ``(dim,)`` of a model flat vector ``x`` (the inverse map)."""
        values = dict(self.shared)
        values.update(self._slices(x))
        groups = {g.var: g for g in self.groups}
        parts = []
        for var in self._variables:
            value = values[var]
            if var in groups:
                value = groups[var].inverse(value, self.weights[var.name], values)
            parts.append(tt.flatten(value))
        return tt.concatenate([p.astype(floatX) for p in parts])

    def batch_model(self, U):
        """Symbolic: the model's flat vectors ``(batch, dim)`` and log|det dx/du| ``(batch,)`` of
        sampling vectors ``U`` ``(batch, dim)``."""
        flat = tt.vector("flat", dtype=floatX)
        x, log_jacobian = vectorize(list(self.flat_model(flat)), flat, U)
        return x, log_jacobian * tt.ones_like(U[:, 0])

    # -- numpy maps of batches --------------------------------------------------------------
    def _batched(self, key, build):
        if key not in self._compiled:
            what = {"to_model": "the non-centring's map to the model", "to_sampling": "the non-centring's inverse map"}
            with change_flags(compute_test_value="off"), compiling(what.get(key, key), self.announce), compile_fixes():
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
        """x ``(dim,)`` (model space) -> per group, the data's precision in units of the prior's
        (each group's ``ratio``), from Hessian-vector products of the density less the group's prior."""
        if "ratio" not in self._compiled:
            with change_flags(compute_test_value="off"), compiling("the non-centring's curvature", self.announce), \
                    compile_fixes():
                x = tt.vector("x_model", dtype=floatX)
                values = dict(self.shared)
                values.update(self._slices(x))
                logp = theano.clone(self.model.logpt, values, strict=False).astype(floatX)
                grad = tt.grad(logp, x)
                slots = {var: (slc, shp) for var, (_, slc, shp, _) in zip(self._variables, self.ordering.vmap)}
                outputs = []
                for group in self.groups:
                    slc, shp = slots[group.var]
                    prior = tt.sum(theano.clone(group.var.distribution.logp(group.var), values, strict=False))
                    prior_grad = tt.grad(prior.astype(floatX), x)

                    def data_hvp(v, slc=slc, shp=shp, prior_grad=prior_grad):
                        direction = tt.set_subtensor(tt.zeros_like(x)[slc], tt.flatten(tt.as_tensor_variable(v)))
                        hv = tt.grad(tt.sum(grad * direction), x)[slc]
                        prior_hv = tt.grad(tt.sum(prior_grad * direction), x)[slc]
                        return tt.reshape(prior_hv - hv, shp)

                    outputs.append(group.ratio(data_hvp, values))
                self._compiled["ratio"] = theano.function([x], outputs, name="noncentring_ratio")
        return self._compiled["ratio"]

    def fit(self, x):
        """Set each group's weights from its ratios at the model flat vectors ``x`` ``(n, dim)``
        (up to :data:`FIT_POINTS` of them, evenly spaced): lam = 1 where the median ratio is
        below 1 (each group's ``weights``).  Returns :meth:`weight_values`."""
        x = np.asarray(x, dtype=floatX)
        x = x[np.all(np.isfinite(x), axis=1)]
        if not self.groups or len(x) == 0:
            return {}
        x = x[np.unique(np.linspace(0, len(x) - 1, min(len(x), FIT_POINTS)).astype(int))]
        ratio = self._ratio_function()
        per_point = [ratio(row) for row in x]
        for k, group in enumerate(self.groups):
            lam = group.weights(np.array([p[k] for p in per_point]))
            self.weights[group.var.name].set_value(np.asarray(lam, dtype=floatX))
        return self.weight_values()

    def weight_values(self):
        """``{name: lam}`` as numpy arrays."""
        return {name: lam.get_value() for name, lam in self.weights.items()}

    def set_weights(self, values):
        """Set the weights from ``{name: array}`` (e.g. a saved sampler's); raises
        ``ValueError`` on a missing group, a wrong shape or a weight outside [0, 1]."""
        groups = {g.var.name: g for g in self.groups}
        for name, shared in self.weights.items():
            if name not in values or np.shape(values[name]) != shared.get_value().shape:
                raise ValueError(f"non-centring: the weights of {name!r} are missing or have the wrong shape.")
            value = np.asarray(values[name], dtype=floatX)
            if not (np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1))):
                raise ValueError(f"non-centring: the weights of {name!r} must be in [0, 1].")
            problem = groups[name].check(value)
            if problem:
                raise ValueError(f"non-centring: the weights of {name!r} {problem}.")
            shared.set_value(value)
