"""``l2hmc_theano.load(path, model)``: a sampler from a file written by
:meth:`L2HMCSampler.save` (the format and its checks: :mod:`.persistence`)."""
from .persistence import read, restore, sampler_arguments
from .sampler import L2HMCSampler

__all__ = ["load"]


def load(path, model=None):
    """Load a sampler saved with :meth:`L2HMCSampler.save` for ``model``.

    ``model``: the PyMC3 model (default: the one on the context stack) or the
    plain energy function the sampler was trained on.  Raises ``ValueError`` if
    its variables or its logp differ from the saved ones.  A file saved before
    samplers had a preconditioner and step-size jitter loads as a sampler without
    them (the dynamics it was trained with).
    """
    meta, arrays = read(path)
    return restore(L2HMCSampler(model, **sampler_arguments(meta, model)), path, meta, arrays)
