"""PyTensor (PyMC >= 5) as the package's graph library, under Theano's names (:mod:`._theano`
chooses it where Theano is not installed).

PyTensor is Theano's own line (Theano -> Aesara -> PyTensor), with the same graph API for what
the symbolic core uses.  Functions compile with PyTensor's C backend (``cvm``), the backend the
Theano stack uses, unless the user's ``PYTENSOR_FLAGS`` set a mode.  Theano's compile fixes
(:mod:`._theano_fixes`) have no counterpart here: :func:`compile_fixes` is a no-op.
"""
import contextlib
import os

import pytensor as theano
import pytensor.tensor as tt
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.rewriting.basic import in2out
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.scan.op import Scan

__all__ = [
    "theano", "tt", "change_flags", "floatX", "Scan", "relu", "SCAN_C_DISABLED", "USER_SET_BLAS_FLAGS",
    "BLAS_LDFLAGS", "NO_DEBUG_INFO", "COMPILE_FIXES", "PARALLEL_BUILD", "PATCHES", "compile_fixes",
    "vectorize_graph", "rewrite_graph", "in2out",
]

if "mode" not in os.environ.get("PYTENSOR_FLAGS", ""):
    theano.config.mode = "FAST_RUN"
    theano.config.linker = "cvm"

floatX = theano.config.floatX
SCAN_C_DISABLED = False
USER_SET_BLAS_FLAGS = None
BLAS_LDFLAGS = None
NO_DEBUG_INFO = False
COMPILE_FIXES, PARALLEL_BUILD, PATCHES = (), None, None


def change_flags(**flags):
    """PyTensor's ``config.change_flags``, without Theano's ``compute_test_value`` (PyTensor has no
    test values: turning them off is what the package asks)."""
    flags.pop("compute_test_value", None)
    return theano.config.change_flags(**flags)


def relu(x):
    """max(x, 0) as Theano's ``relu`` computes it: 0.5 (x + |x|)."""
    return 0.5 * (x + abs(x))


def compile_fixes():
    """Theano's compile fixes have no counterpart on PyTensor: nothing to put in place."""
    return contextlib.nullcontext()
