"""U = -log p of a PyMC3 model (Theano) as a batched energy (:class:`ModelEnergy`).

Its continuous free variables (in the model's transformed space) are laid out in one flat vector in
PyMC3's own ``free_RVs`` order, the order ``model.logp_dlogp_function()`` uses.  The same
:class:`pymc3.blocking.ArrayOrdering` flattens and unflattens.
"""
import hashlib

import numpy as np

from ._pymc3 import ArrayOrdering, DictToArrayBijection, STEP_METHODS, pm
from ._theano import change_flags, floatX, theano, tt
from .energy import Energy
from .logp_graph import cholesky_nan_on_error, grad_by_column_blocks
from .reparam import NonCentring, flat_slices
from .vectorize import vectorize

__all__ = ["ModelEnergy"]


class ModelEnergy(Energy):
    """U = -logp of a PyMC3 model's continuous free variables, as a flat vector.

    Parameters
    ----------
    model : pymc3.Model or None
        Default: the model on the context stack.
    vars : list of free variables, optional
        The variables of the flat vector, in this order (default: all free
        variables, which must then all be continuous; the order is kept).  The model's other free
        variables are read from ``shared`` (as in a compound step).
    shared : dict variable -> Theano shared variable, optional
        Replacements for the free variables not in ``vars``
        (``pymc3.make_shared_replacements``); default: shared copies holding
        their test values.

    batching : "vectorize" or "map"
        How the flat-vector logp graph is batched: rewritten with a leading batch
        axis by :func:`l2hmc_theano.vectorize.vectorize` (default), or
        ``theano.map`` over rows (for comparison, and as an escape hatch).
    noncentre : bool
        Sample the model's location-scale groups (Normal, StudentT, Cauchy, Laplace, Logistic) whose scale depends on other variables (funnels,
        centred hierarchies) non-centred where the prior dominates
        (:mod:`l2hmc_theano.reparam`; default True).  The flat vector the energy takes is
        then in the sampling coordinates u; :meth:`to_model` and :meth:`to_sampling` map
        batches between u and the model's flat vector, and the point methods below speak
        the model's values.

    Attributes
    ----------
    noncentring : :class:`l2hmc_theano.reparam.NonCentring`, or None when ``noncentre`` is
        False or the model has no group to non-centre.
    vars : the free variables, in flat-vector order.
    ordering : ``pymc3.blocking.ArrayOrdering`` over ``vars``.
    dim : length of the flat vector.
    """

    def __init__(self, model=None, vars=None, shared=None, batching="vectorize", noncentre=True):
        try:
            model = pm.modelcontext(model)
        except TypeError:
            raise TypeError(
                "No PyMC3 model given and none on the context stack: pass model=<pm.Model>, "
                "or create the sampler inside a `with model:` block."
            ) from None
        self.model = model
        chosen = list(model.free_RVs) if vars is None else list(vars)
        unknown = [getattr(v, "name", str(v)) for v in chosen if v not in model.free_RVs]
        if unknown:
            raise ValueError(
                f"vars must be free random variables of the model; {', '.join(map(repr, unknown))} "
                "are not (pass the variables themselves, e.g. model['mu'], or their transformed "
                "versions, e.g. model['sigma_log__'])."
            )
        discrete = [v for v in chosen if v.dtype not in pm.theanof.continuous_types]
        continuous = [v.name for v in model.free_RVs if v.dtype in pm.theanof.continuous_types]
        if discrete and continuous:
            raise ValueError(
                f"L2HMC samples continuous variables only, but the model has discrete free variable(s) "
                f"{_discrete_steps(discrete)}. Sample them in a compound step: pm.sample(step=l2hmc_theano.L2HMC()) "
                f"puts L2HMC on the continuous ones ({', '.join(continuous)}) and lets PyMC3 assign those steps to "
                "the discrete ones (the command line cannot run a compound step: use pm.sample).")
        if discrete or not chosen:
            raise ValueError(
                "The model has no continuous free variables: there is nothing for L2HMC to sample"
                + (f" (PyMC3's pm.sample() samples its discrete ones by itself: {_discrete_steps(discrete)})."
                   if discrete else ". Add an unobserved continuous random variable to the model."))
        if batching not in ("vectorize", "map"):
            raise ValueError(f"batching must be 'vectorize' or 'map', got {batching!r}.")
        self.batching = batching
        self.noncentre = bool(noncentre)
        self._given_vars = vars
        if shared is None:
            shared = pm.make_shared_replacements(chosen, model) if vars is not None else {}
        self.vars = chosen
        self.shared = shared
        self.ordering = ArrayOrdering(chosen)
        self.dim = self.ordering.size
        self.var_names = [v.name for v in chosen]
        self.bijection = DictToArrayBijection(self.ordering, model.test_point)


        with change_flags(compute_test_value="off"):
            noncentring = NonCentring(model, self.ordering, shared) if noncentre else None
            self.noncentring = noncentring if noncentring else None
            x = tt.vector("x_flat", dtype=floatX)
            if self.noncentring is not None:
                logp = self.noncentring.logp(x)
            else:
                logp = theano.clone(model.logpt, self.model_replacements(x), strict=False)
            self._x = x
            self._logp = cholesky_nan_on_error(logp.astype(floatX))
            self._dlogp = tt.grad(self._logp, x)

    def model_replacements(self, x):
        """The model's free variables as slices of its flat vector ``x`` ``(dim,)`` (symbolic),
        and the others as their shared values: a ``theano.clone`` replacement dict."""
        replace = flat_slices(x, self.vars, self.ordering.vmap)
        replace.update(self.shared)
        return replace

    def with_noncentring(self, noncentre):
        """This energy if its non-centring is already ``noncentre`` (on when it has groups to
        non-centre), else the same target built with ``noncentre`` (e.g. for a sampler saved
        without non-centring)."""
        if (self.noncentring is not None) == bool(noncentre) or (noncentre and self.noncentre):
            return self  # as asked, or asked to non-centre a model with nothing to non-centre
        return ModelEnergy(self.model, vars=self._given_vars, shared=self.shared if self._given_vars is not None
                           else None, batching=self.batching, noncentre=noncentre)

    # -- sampling coordinates <-> the model's flat vector <-> point dict ---------------
    def to_model(self, u):
        """The model's flat vectors ``(n, dim)`` of sampling vectors ``u`` ``(n, dim)`` (the same
        unless groups are non-centred)."""
        return self.to_model_with_jacobian(u)[0]

    def to_model_with_jacobian(self, u):
        """``(x, log_jacobian)``: the model's flat vectors ``(n, dim)`` of sampling vectors ``u``
        ``(n, dim)`` and log|det dx/du| ``(n,)``; U(u) = -log p(x) - log_jacobian."""
        u = np.asarray(u, dtype=floatX)
        if self.noncentring is None:
            return u, np.zeros(len(u), dtype=floatX)
        return self.noncentring.to_model(u)

    def to_model_graph(self, U):
        """Symbolic :meth:`to_model_with_jacobian` of a ``(batch, dim)`` matrix ``U``."""
        if self.noncentring is None:
            return U, tt.zeros_like(U[:, 0])
        with change_flags(compute_test_value="off"):
            return self.noncentring.batch_model(U)

    def to_sampling(self, x):
        """Sampling vectors ``(n, dim)`` of the model's flat vectors ``x`` ``(n, dim)``."""
        x = np.asarray(x, dtype=floatX)
        return x if self.noncentring is None else self.noncentring.to_sampling(x)

    def point_to_array(self, point):
        """Flat ``(dim,)`` sampling vector of a point dict (transformed-space names)."""
        return self.to_sampling(np.asarray(self.bijection.map(point), dtype=floatX)[None, :])[0]

    def array_to_point(self, array):
        """Point dict (transformed-space names) of a flat ``(dim,)`` sampling vector."""
        array = np.asarray(array)
        if array.shape != (self.dim,):
            raise ValueError(f"array_to_point: expected shape ({self.dim},), got {array.shape}.")
        return self.bijection.rmap(self.to_model(array[None, :])[0].astype(array.dtype))

    def start_array(self):
        """The model's test point as a flat ``(dim,)`` sampling vector."""
        return self.point_to_array(self.model.test_point)

    def describe_bad_start(self, grad):
        """Why the energy is not finite at the model's initial point: each variable whose log
        density is -inf or NaN there with its value (``model.check_test_point()``, as PyMC3
        reports it), or else the variables whose entries of ``grad`` ``(dim,)`` (dU there) are not
        finite."""
        point = self.model.test_point
        logps = self.model.check_test_point()
        bad = [name for name, value in logps.items() if not np.isfinite(value)]
        if bad:
            lines = []
            for name in bad:
                variable = self.model[name]
                value = point.get(name, getattr(getattr(variable, "observations", None), "value",
                                                getattr(variable, "observations", None)))
                if value is None and hasattr(variable, "tag"):
                    value = getattr(variable.tag, "test_value", None)
                kind = "observed" if variable in self.model.observed_RVs else "initial value"
                lines.append(f"{name}: log density {logps[name]} at its {kind} {_short(value)}")
            return ("the model's log density is not finite at its initial point: " + "; ".join(lines)
                    + ". An observed value outside its distribution's support, or a parameter whose initial value "
                    "(testval=...) is outside it, does this.")
        names = sorted({name for name, slc, _, _ in self.ordering.vmap
                        if not np.all(np.isfinite(np.asarray(grad)[slc]))})
        return (f"the gradient of the model's log density is not finite at its initial point, in "
                f"{', '.join(names)} (initial values {', '.join(f'{n} = {_short(point[n])}' for n in names)}). "
                "Give those variables an initial value (testval=...) where the density is smooth.")

    # -- graphs ------------------------------------------------------------------------
    def value_and_grad_vector(self, x):
        """``(U(x), dU/dx)`` for one flat ``(dim,)`` vector ``x``."""
        logp, dlogp = theano.clone([self._logp, self._dlogp], {self._x: x}, strict=False)
        return -logp, -dlogp

    def value_and_grad(self, X):
        """``(U, dU)`` of a ``(batch, dim)`` matrix: the vectorised logp graph and the
        gradient of its sum (rows are independent), or ``theano.map`` over rows."""
        with change_flags(compute_test_value="off"):
            if self.batching == "map":
                (U, dU), _ = theano.map(self.value_and_grad_vector, sequences=[X])
                return U, dU

            (logp,) = vectorize([self._logp], self._x, X)
            U = -logp
            dU = grad_by_column_blocks(U.sum(), X, self.dim)
            return U, tt.grad(U.sum(), X) if dU is None else dU

    def flat_layout(self):
        """[(name, shape, dtype)] of the flat vector's variables, in order (PyMC3's ordering)."""
        return [[name, [int(n) for n in shape], str(dtype)] for name, _, shape, dtype in self.ordering.vmap]

    def fingerprint(self):
        """Variable layout plus a hash of the logp graph's printed form."""
        layout = ";".join(f"{n}:{tuple(s)}:{d}" for n, _, s, d in self.ordering.vmap)
        graph = theano.printing.debugprint(self._logp, file="str", ids="")
        return "model:" + hashlib.sha256((layout + "\n" + graph).encode()).hexdigest()


def _discrete_steps(variables):
    """'x (Metropolis), z (BinaryGibbsMetropolis)': each discrete variable with the step PyMC3's
    pm.sample would assign it (the most competent of its step methods)."""
    def best(var):
        return max(STEP_METHODS, key=lambda method: method._competence(var, False)).__name__

    return ", ".join(f"{v.name} ({best(v)})" for v in variables)


def _short(value, size=6):
    """A value for a message: an array's first ``size`` entries."""
    array = np.asarray(value)
    if array.size <= size:
        return np.array2string(array, precision=4) if array.ndim else f"{array.item():.4g}"
    return np.array2string(array.ravel()[:size], precision=4)[:-1] + f" ... ({array.size} values)]"
