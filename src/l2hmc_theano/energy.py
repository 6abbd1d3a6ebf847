"""Potential energy U(x) = -log p(x) and its gradient as batched graphs: the interface, whatever
the stack.

Sources of a target:

* a PyMC3 model: :class:`.pymc3_energy.ModelEnergy`; a PyMC >= 5 model:
  :class:`.pymc_energy.PyMCModelEnergy` (:func:`.model_adapter.as_energy` picks the stack's);
* :class:`FunctionEnergy` - a plain graph function of a ``(batch, dim)``
  matrix returning ``(batch,)`` energies, for synthetic targets.

Both expose ``value_and_grad(X) -> (U, dU)`` for a symbolic ``(batch, dim)``
matrix ``X``: ``U`` has shape ``(batch,)`` and ``dU`` shape ``(batch, dim)``;
both are differentiable again (the training loss differentiates through dU).
"""
from ._theano import change_flags, floatX, tt

__all__ = ["Energy", "FunctionEnergy", "layout", "StartError"]


class StartError(ValueError):
    """The target's energy or gradient is not finite at its initial point: nothing can start there."""


class Energy:
    """Interface: a target of dimension ``dim`` with a batched energy graph."""

    dim: int

    def value_and_grad(self, X):
        """Return ``(U(X), dU/dX)`` of shapes ``(batch,)`` and ``(batch, dim)``."""
        raise NotImplementedError

    def fingerprint(self):
        """A string that identifies the target (used to check saved samplers)."""
        raise NotImplementedError

    def flat_layout(self):
        """The flat vector's variables, in order: [(name, shape, dtype)]; here one scalar per
        dimension, named by ``var_names``."""
        return [[name, [], floatX] for name in self.var_names]


class FunctionEnergy(Energy):
    """Energy from a Theano function ``fn(X) -> (batch,)`` of a ``(batch, dim)`` matrix.

    The rows must be independent (row ``i`` of the output depends on row ``i``
    of ``X`` only): the gradient is taken as ``d sum(U) / dX``.
    """

    def __init__(self, fn, dim, name=None):
        dim = int(dim)
        if dim < 1:
            raise ValueError(f"FunctionEnergy: dim must be >= 1, got {dim}.")
        self.fn = fn
        self.dim = dim
        self.name = name or getattr(fn, "__name__", "energy")
        self.var_names = [f"x{i}" for i in range(dim)]

    def value_and_grad(self, X):
        with change_flags(compute_test_value="off"):
            U = self.fn(X)
            dU = tt.grad(U.sum(), X) if U.ndim == 1 else None
        if U.ndim != 1:
            raise ValueError(
                f"FunctionEnergy {self.name!r}: the energy function must return a (batch,) "
                f"vector for a (batch, dim) input, got a {U.ndim}-d tensor."
            )
        return U, dU

    def fingerprint(self):
        return f"function:{self.name}:{self.dim}"


def layout(energy):
    """Flat-vector layout of a target: [(name, shape, dtype)] (:meth:`Energy.flat_layout`; one entry
    per dimension for a plain energy function)."""
    return energy.flat_layout()
