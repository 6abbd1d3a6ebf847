"""The model adapter: what a user passes as a target, as the package's :class:`.energy.Energy`, on
the stack installed (:data:`._theano.BACKEND`): a PyMC3 model (:class:`.pymc3_energy.ModelEnergy`)
or a PyMC >= 5 one (:class:`.pymc_energy.PyMCModelEnergy`)."""
from ._theano import BACKEND
from .energy import Energy, FunctionEnergy

if BACKEND == "theano":
    from ._pymc3 import pm
    from .pymc3_energy import ModelEnergy
else:
    from ._pymc import pm
    from .pymc_energy import PyMCModelEnergy as ModelEnergy

__all__ = ["as_energy", "ModelEnergy"]


def as_energy(target, dim=None):
    """Turn what a user passes as a target into an :class:`Energy`.

    ``target`` may be an :class:`Energy`, a model of the stack's PyMC (``pymc3.Model`` or
    ``pymc.Model``), ``None`` (the model on the context stack), or a graph function of a
    ``(batch, dim)`` matrix (then ``dim`` is required).
    """
    if isinstance(target, Energy):
        energy = target
    elif target is None or isinstance(target, pm.Model):
        energy = ModelEnergy(target)
    elif callable(target):
        if dim is None:
            raise ValueError("A plain energy function needs its dimension: pass dim=<int>.")
        return FunctionEnergy(target, dim)
    else:
        raise TypeError(
            f"Expected a {pm.__name__}.Model, an l2hmc_theano Energy or a graph energy function, "
            f"got {type(target).__name__}."
        )
    if dim is not None and int(dim) != energy.dim:
        raise ValueError(f"dim={dim} was given, but the target has dimension {energy.dim}.")
    return energy
