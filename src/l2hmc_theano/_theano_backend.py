"""Theano (theano-pymc, PyMC3's stack) as the package's graph library, made to work on this stack
(:mod:`._theano` chooses it where Theano is installed).

Before Theano is first imported, :func:`l2hmc_theano_flags.configure` (a top-level module, so
that the start-up file installed with the package can call it when another program imports
Theano first) sets these, only where the user has not set them already (a user's own
``THEANO_FLAGS`` or ``.theanorc`` always wins):

* ``blas__ldflags``: Theano computes its default BLAS link flags from
  ``numpy.distutils.__config__.blas_opt_info``, which NumPy >= 1.22 no longer
  has, so ``import theano`` fails without an explicit value.  On Linux the value
  links the OpenBLAS that SciPy's wheel bundles (``scipy.libs/libopenblas*.so``,
  already loaded by any process that imports ``scipy.linalg``, as PyMC3 does), so
  Theano's Dot22, Gemm, Gemv and Ger run as C code.  With an empty value they have no
  C code and run ``perform`` in Python: dozens of calls through the interpreter per
  ``pm.sample`` draw (``benchmarks/step_cost.py`` measures it).  Where no such
  library is found (another platform, SciPy from a distribution, a path Theano
  cannot quote) the value is empty, Theano's NumPy C-API fallback.
  ``L2HMC_BLAS=numpy`` chooses the empty value; ``BLAS_LDFLAGS`` says which was chosen.
* ``gcc__cxxflags=-g0``: Theano runs gcc with ``-g``; debug information serves nobody
  who does not debug Theano's C code, and leaving it out shortens a cold compile.
* On Python >= 3.11, ``theano.scan.scan_perform_ext`` is made unimportable.
  Its bundled Cython C does not compile against 3.11 headers; Scan falls back
  to its Python outer loop only on ``ImportError``.  The inner graph of every
  Scan is still compiled C.

Four fixes to Theano's compile path (:mod:`._theano_fixes`) are in place while the package builds
and compiles its own functions (``with compile_fixes():``), not otherwise.
"""
from l2hmc_theano_flags import bundled_openblas_ldflags, configure, restore_environment  # noqa: F401

__all__ = [
    "theano", "tt", "change_flags", "floatX", "Scan", "relu", "SCAN_C_DISABLED", "USER_SET_BLAS_FLAGS",
    "BLAS_LDFLAGS", "NO_DEBUG_INFO", "COMPILE_FIXES", "PARALLEL_BUILD", "PATCHES", "compile_fixes",
    "bundled_openblas_ldflags",
]

_CHOSEN = configure()
#: Whether the user set ``blas__ldflags`` themselves (THEANO_FLAGS or .theanorc).
USER_SET_BLAS_FLAGS = _CHOSEN["user_set_blas_flags"]
#: The ``blas__ldflags`` chosen here (None where the user set their own).
BLAS_LDFLAGS = _CHOSEN["blas_ldflags"]
#: Whether ``gcc__cxxflags=-g0`` was set here (False where the user set their own).
NO_DEBUG_INFO = _CHOSEN["no_debug_info"]
#: Whether Scan's C extension was made unimportable (Python >= 3.11).
SCAN_C_DISABLED = _CHOSEN["scan_c_disabled"]

import theano  # noqa: E402
import theano.tensor as tt  # noqa: E402

restore_environment()  # Theano has read THEANO_FLAGS: subprocesses inherit the user's own

change_flags = theano.config.change_flags
floatX = theano.config.floatX
relu = tt.nnet.relu  # 0.5 (x + |x|)
from theano.scan.op import Scan  # noqa: E402  (``theano.scan`` is the function, not the package)

from . import _theano_fixes  # noqa: E402

#: The compile-time fixes installed (:mod:`._theano_fixes`), the parallel C build (its ``counts``;
#: None where not installed) and their replacements of Theano's attributes.
COMPILE_FIXES, PARALLEL_BUILD, PATCHES = _theano_fixes.install_compile_fixes()
#: ``with compile_fixes():`` build and compile with the fixes in place (nested blocks are one).
compile_fixes = PATCHES.active
