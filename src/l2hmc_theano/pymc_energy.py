"""A PyMC >= 5 model (PyTensor) as the package's batched energy: U(x) = -log p(x) and dU/dx for a
``(batch, dim)`` matrix of flat vectors, the model adapter's first piece on today's PyMC.

The flat vector ``x`` ``(dim,)`` holds the model's continuous value variables in the transformed
space, in ``model.continuous_value_vars`` order, each raveled: the layout of PyMC's own
``model.logp_dlogp_function()`` (``DictToArrayBijection``).  The model's log density of ``x``
(Jacobians of the transforms included) is written for a batch by PyTensor's ``vectorize_graph``
(every row independent).  Before that, PyMC's parameter checks (``CheckParameterValue``, which
raise) become a switch to -inf on the one-row graph: vectorised as they are, one row's invalid
parameter would raise for, or poison, the whole batch; so it is -inf (U = +inf) for that row only,
the divergence of that chain alone.
"""
import numpy as np

from ._pymc import DictToArrayBijection, join_nonshared_inputs, local_check_parameter_to_ninf_switch, pm
from ._pytensor_backend import in2out, rewrite_graph, vectorize_graph
from ._theano import floatX, tt
from .energy import Energy

__all__ = ["PyMCModelEnergy"]


class PyMCModelEnergy(Energy):
    """The energy of a PyMC >= 5 ``model`` (default: the one on the context stack).

    ``dim``, ``var_names`` (the continuous value variables, in the flat vector's order),
    ``value_and_grad(X) -> (U (batch,), dU/dx (batch, dim))`` for a symbolic ``X``
    ``(batch, dim)``; ``point_to_array`` / ``array_to_point`` between a point (dict by value
    variable name) and a flat vector; ``start_array()`` the model's initial point."""

    def __init__(self, model=None):
        model = pm.modelcontext(model)
        discrete = [v.name for v in model.value_vars if v not in model.continuous_value_vars]
        if discrete:
            raise ValueError(f"The model has discrete variables ({', '.join(discrete)}): on PyMC >= 5 the energy "
                             "moves continuous variables only, and L2HMC's compound step is not there yet.")
        self.model = model
        self.value_vars = list(model.continuous_value_vars)
        self.var_names = [v.name for v in self.value_vars]
        start = model.initial_point()
        self.start_point = {name: np.asarray(start[name]) for name in self.var_names}
        self.point_map_info = DictToArrayBijection.map(self.start_point).point_map_info
        self.dim = int(sum(np.asarray(value).size for value in self.start_point.values()))
        [logp], self._x = join_nonshared_inputs(start, [model.logp()], self.value_vars)
        self._logp = rewrite_graph(logp, include=(), custom_rewrite=in2out(local_check_parameter_to_ninf_switch))

    def value_and_grad(self, X):
        """U ``(batch,)`` and dU/dX ``(batch, dim)`` for the symbolic ``X`` ``(batch, dim)``."""
        (logp,) = vectorize_graph([self._logp], {self._x: X})
        U = -tt.cast(logp, floatX)
        return U, tt.grad(U.sum(), X)

    def point_to_array(self, point):
        """A point (dict by value variable name) -> its flat vector ``(dim,)``."""
        return np.concatenate([np.asarray(point[name], dtype=floatX).ravel() for name in self.var_names])

    def array_to_point(self, array):
        """A flat vector ``(dim,)`` -> the point (dict by value variable name)."""
        array = np.asarray(array)
        if array.shape != (self.dim,):
            raise ValueError(f"Expected a flat vector of shape ({self.dim},), got {array.shape}.")
        point, start = {}, 0
        for name, shape, size, _ in self.point_map_info:
            point[name] = array[start:start + size].reshape(shape)
            start += size
        return point

    def start_array(self):
        """The model's initial point as a flat vector ``(dim,)``."""
        return self.point_to_array(self.start_point)

    def flat_layout(self):
        """[(name, shape, dtype)] of the flat vector's variables, in order."""
        return [[name, [int(n) for n in shape], str(dtype)] for name, shape, _, dtype in self.point_map_info]
