"""The one place where PyMC3 is imported: every module of the package takes what it uses of PyMC3
from here, as it takes Theano from :mod:`._theano` (imported first: it sets Theano's flags)."""
from . import _theano  # noqa: F401  (Theano's flags before PyMC3 imports Theano)

import pymc3 as pm  # noqa: E402
from pymc3.backends.report import SamplerWarning, WarningType  # noqa: E402
from pymc3.blocking import ArrayOrdering, DictToArrayBijection  # noqa: E402
from pymc3.sampling import STEP_METHODS  # noqa: E402
from pymc3.step_methods.arraystep import ArrayStepShared, Competence  # noqa: E402
from pymc3.variational.updates import adam  # noqa: E402

__all__ = ["pm", "SamplerWarning", "WarningType", "ArrayOrdering", "DictToArrayBijection", "STEP_METHODS",
           "ArrayStepShared", "Competence", "adam", "VERSION"]

#: PyMC3's version, for the cache's digest of what a trained sampler depends on.
VERSION = pm.__version__
