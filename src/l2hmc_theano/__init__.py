"""L2HMC (Levy, Hoffman, Sohl-Dickstein, ICLR 2018) for PyMC3, in one Theano graph."""
from . import _theano  # noqa: F401  (sets Theano's flags before anything imports it)
from .energy import Energy, FunctionEnergy, ModelEnergy, StartError
from .loading import load
from .sampler import L2HMCSampler
from .step import L2HMC
from .fit import train
from .many_chains import sample
from .training import TrainingError
from .cache import clear_cache

__all__ = ["L2HMC", "L2HMCSampler", "Energy", "FunctionEnergy", "ModelEnergy", "StartError", "TrainingError", "clear_cache", "load",
           "sample", "train"]

