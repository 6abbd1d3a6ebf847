"""The one place today's PyMC (>= 5, on PyTensor) is imported: every module that needs it takes it
from here, as :mod:`._pymc3` serves PyMC3."""
import pymc as pm
from pymc.blocking import DictToArrayBijection, RaveledVars
from pymc.logprob.utils import local_check_parameter_to_ninf_switch
from pymc.pytensorf import join_nonshared_inputs
from pymc.variational.updates import adam

__all__ = ["pm", "DictToArrayBijection", "RaveledVars", "join_nonshared_inputs", "local_check_parameter_to_ninf_switch",
           "adam", "VERSION"]

VERSION = pm.__version__
