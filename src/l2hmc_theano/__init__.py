"""L2HMC (Levy, Hoffman, Sohl-Dickstein, ICLR 2018) for PyMC, in one graph of the model's own library.

On PyMC3 (Theano) the whole package is here.  On PyMC >= 5 (PyTensor) the symbolic core is
(:mod:`.dynamics`, :mod:`.kernel`, :mod:`.networks`, :mod:`.loss`) and a model's batched energy
(:class:`.pymc_energy.PyMCModelEnergy`); its PyMC step, training and sampling are not yet, and
asking for them says so."""
from . import _theano  # noqa: F401  (chooses the graph library; Theano's flags before anything imports it)

__all__ = ["L2HMC", "L2HMCSampler", "Energy", "FunctionEnergy", "ModelEnergy", "StartError", "TrainingError",
           "clear_cache", "load", "sample", "train"]

if _theano.BACKEND == "theano":
    from .energy import Energy, FunctionEnergy, ModelEnergy, StartError
    from .loading import load
    from .sampler import L2HMCSampler
    from .step import L2HMC
    from .fit import train
    from .many_chains import sample
    from .training import TrainingError
    from .cache import clear_cache
else:
    def __getattr__(name):
        if name in __all__:
            raise ImportError(
                f"l2hmc_theano.{name} needs PyMC3 (Theano) for now: on PyMC >= 5 (PyTensor) only the symbolic core "
                "(l2hmc_theano.dynamics, kernel, networks, loss) and a model's energy (l2hmc_theano.pymc_energy) are "
                "available yet. Install the PyMC3 stack on Python 3.11: pip install 'l2hmc_theano[pymc3]'.")
        raise AttributeError(f"module 'l2hmc_theano' has no attribute {name!r}")
