"""``l2hmc_theano.train(model, ...)``: build an :class:`~l2hmc_theano.L2HMCSampler` for a model
and train it (warm-up, training, the networks-or-HMC selection), or load the one trained on the
same model with the same arguments from the cache.  The command line is :mod:`l2hmc_theano.cli`."""
import inspect
import os

from .cache import trained_sampler
from .model_adapter import as_energy
from .loading import load
from .sampler import L2HMCSampler

__all__ = ["train", "split_arguments", "given_sampler"]


def split_arguments(kwargs, caller):
    """``kwargs`` as ``(constructor arguments, training arguments)``: those of
    :class:`~l2hmc_theano.L2HMCSampler` and of :meth:`L2HMCSampler.train`; a ``TypeError`` from
    ``caller`` naming any that are neither."""
    init_names = set(inspect.signature(L2HMCSampler.__init__).parameters) - {"self", "model"}
    train_names = set(inspect.signature(L2HMCSampler.train).parameters) - {"self", "sampler"}
    unknown = set(kwargs) - init_names - train_names
    if unknown:
        raise TypeError(f"{caller} got unknown keyword argument(s): {', '.join(sorted(unknown))}.")
    return ({k: v for k, v in kwargs.items() if k in init_names},
            {k: v for k, v in kwargs.items() if k not in init_names})


def given_sampler(sampler, model, train_kwargs, caller):
    """The trained sampler ``caller`` was given: ``sampler`` itself, or the one saved at that path,
    loaded for ``model``.  A ``TypeError`` when training arguments ``train_kwargs`` came with it (they
    would be ignored) or it is neither."""
    if train_kwargs:
        raise TypeError(f"{caller} got training arguments ({', '.join(sorted(train_kwargs))}) together with a "
                        "trained sampler; pass one or the other.")
    if isinstance(sampler, (str, bytes, os.PathLike)):
        return load(sampler, model=model)
    if not isinstance(sampler, L2HMCSampler):
        raise TypeError(f"sampler must be an L2HMCSampler, a path or None, got {type(sampler).__name__}.")
    return sampler


def train(model=None, cache=True, **kwargs):
    """Build an :class:`~l2hmc_theano.L2HMCSampler` for ``model`` and train it; returns the sampler.

    Keyword arguments go to the constructor (``n_steps, step_size, hidden, seed,
    zero_network, dim, networks``) or to :meth:`L2HMCSampler.train` (the rest).
    The training history is ``sampler.history``.  ``cache``: load the sampler trained on
    this model with these arguments last time, if any, and cache a newly trained one
    (default True; :mod:`l2hmc_theano.cache`).
    """
    init_kwargs, train_kwargs = split_arguments(kwargs, "train()")
    return trained_sampler(as_energy(model, dim=init_kwargs.get("dim")), init_kwargs, train_kwargs, cache=cache)
