"""L2HMC (Levy, Hoffman, Sohl-Dickstein, ICLR 2018) for PyMC3, in one Theano graph."""
from . import _theano  # noqa: F401  (sets Theano's flags before anything imports it)
from .energy import Energy, FunctionEnergy, ModelEnergy
from .persistence import load
from .sampler import L2HMCSampler
from .training import TrainingError

__all__ = ["L2HMCSampler", "Energy", "FunctionEnergy", "ModelEnergy", "TrainingError", "load", "train"]


def train(model=None, **kwargs):
    """Build an :class:`L2HMCSampler` for ``model`` and train it; returns the sampler.

    Keyword arguments go to the constructor (``n_steps, step_size, hidden, seed,
    zero_network, dim, networks``) or to :meth:`L2HMCSampler.train` (the rest).
    The training history is ``sampler.history``.
    """
    import inspect

    init_names = set(inspect.signature(L2HMCSampler.__init__).parameters) - {"self", "model"}
    init_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in init_names}
    unknown = set(kwargs) - set(inspect.signature(L2HMCSampler.train).parameters)
    if unknown:
        raise TypeError(f"train() got unknown keyword argument(s): {', '.join(sorted(unknown))}.")
    sampler = L2HMCSampler(model, **init_kwargs)
    sampler.train(**kwargs)
    return sampler
__version__ = "0.1.0.dev0"
