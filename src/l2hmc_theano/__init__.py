"""L2HMC (Levy, Hoffman, Sohl-Dickstein, ICLR 2018) for PyMC, in one graph of the model's own library.

On PyMC3 (Theano) the whole package is here.  On PyMC >= 5 (PyTensor) so far: the symbolic core
(:mod:`.dynamics`, :mod:`.kernel`, :mod:`.networks`, :mod:`.loss`), a model's batched energy
(:class:`.pymc_energy.PyMCModelEnergy`), :class:`L2HMCSampler` on it (warm-up, training and draws,
NumPy in and out) and :func:`load`; ``L2HMC`` (the ``pm.sample`` step), ``train``, ``sample`` and
``clear_cache`` are not yet, and asking for them says so."""
from . import _theano  # noqa: F401  (chooses the graph library; Theano's flags before anything imports it)
from .energy import Energy, FunctionEnergy, StartError
from .loading import load
from .sampler import L2HMCSampler
from .training import TrainingError

__all__ = ["L2HMC", "L2HMCSampler", "Energy", "FunctionEnergy", "ModelEnergy", "StartError", "TrainingError",
           "clear_cache", "load", "sample", "train"]

if _theano.BACKEND == "theano":
    from .pymc3_energy import ModelEnergy
    from .step import L2HMC
    from .fit import train
    from .many_chains import sample
    from .cache import clear_cache
else:
    from .pymc_energy import PyMCModelEnergy as ModelEnergy

    _NOT_YET = ("L2HMC", "clear_cache", "sample", "train")

    def __getattr__(name):
        if name in _NOT_YET:
            raise ImportError(
                f"l2hmc_theano.{name} needs PyMC3 (Theano) for now: on PyMC >= 5 (PyTensor) the symbolic core, a "
                "model's energy (l2hmc_theano.ModelEnergy), L2HMCSampler (warm-up, training, draws) and load are there so "
                "far. Install the PyMC3 stack on Python 3.11: pip install 'l2hmc_theano[pymc3]'.")
        raise AttributeError(f"module 'l2hmc_theano' has no attribute {name!r}")
