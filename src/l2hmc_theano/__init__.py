"""L2HMC (Levy, Hoffman, Sohl-Dickstein, ICLR 2018) for PyMC3, in one Theano graph."""
from . import _theano  # noqa: F401  (sets Theano's flags before anything imports it)
from .energy import Energy, FunctionEnergy, ModelEnergy
from .sampler import L2HMCSampler

__all__ = ["L2HMCSampler", "Energy", "FunctionEnergy", "ModelEnergy"]
__version__ = "0.1.0.dev0"
