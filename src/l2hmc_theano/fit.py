"""``l2hmc_theano.train(model, ...)``: build an :class:`~l2hmc_theano.L2HMCSampler` for a model
and train it (warm-up, training, the networks-or-HMC selection), or load the one trained on the
same model with the same arguments from the cache.  The command line is :mod:`l2hmc_theano.cli`."""
import inspect

from .cache import trained_sampler
from .energy import as_energy
from .sampler import L2HMCSampler

__all__ = ["train"]


def train(model=None, cache=True, **kwargs):
    """Build an :class:`~l2hmc_theano.L2HMCSampler` for ``model`` and train it; returns the sampler.

    Keyword arguments go to the constructor (``n_steps, step_size, hidden, seed,
    zero_network, dim, networks``) or to :meth:`L2HMCSampler.train` (the rest).
    The training history is ``sampler.history``.  ``cache``: load the sampler trained on
    this model with these arguments last time, if any, and cache a newly trained one
    (default True; :mod:`l2hmc_theano.cache`).
    """
    init_names = set(inspect.signature(L2HMCSampler.__init__).parameters) - {"self", "model"}
    init_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in init_names}
    unknown = set(kwargs) - set(inspect.signature(L2HMCSampler.train).parameters)
    if unknown:
        raise TypeError(f"train() got unknown keyword argument(s): {', '.join(sorted(unknown))}.")
    return trained_sampler(as_energy(model, dim=init_kwargs.get("dim")), init_kwargs, kwargs, cache=cache)
