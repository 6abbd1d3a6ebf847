"""The one place where the package's array-graph library is chosen: every module imports it through
here (``from ._theano import theano, tt``), under Theano's names.

* ``theano``: Theano (theano-pymc 1.1.2, PyMC3's stack), :mod:`._theano_backend`;
* ``pytensor``: PyTensor (PyMC >= 5), :mod:`._pytensor_backend`, under the same names
  (``theano`` is ``pytensor``, ``tt`` is ``pytensor.tensor``).

The one installed is chosen (Theano where both are); ``L2HMC_BACKEND=theano`` or ``=pytensor``
chooses explicitly.  :data:`BACKEND` says which.
"""
import importlib.util
import os

BACKENDS = ("theano", "pytensor")


def _choose():
    chosen = os.environ.get("L2HMC_BACKEND", "").strip().lower()
    if chosen:
        if chosen not in BACKENDS:
            raise ImportError(f"L2HMC_BACKEND={chosen!r}: choose one of {', '.join(BACKENDS)}.")
        return chosen
    for name in BACKENDS:
        if importlib.util.find_spec(name) is not None:
            return name
    raise ImportError("l2hmc_theano needs Theano with PyMC3 (pip install 'l2hmc_theano[pymc3]', Python 3.11) "
                      "or PyTensor with PyMC >= 5 (pip install 'l2hmc_theano[pymc]').")


#: The graph library in use: "theano" or "pytensor".
BACKEND = _choose()

if BACKEND == "theano":
    from ._theano_backend import *  # noqa: F401,F403
    from ._theano_backend import __all__ as _names
else:
    from ._pytensor_backend import *  # noqa: F401,F403
    from ._pytensor_backend import __all__ as _names

__all__ = ["BACKEND", "BACKENDS"] + list(_names)
