"""The one place where Theano is imported and made to work on this stack.

Every module of the package imports Theano through here::

    from ._theano import theano, tt

What this module sets, before Theano is first imported, and only where the
user has not set it already (a user's own ``THEANO_FLAGS`` or ``.theanorc``
always wins):

* ``blas__ldflags=""``: Theano computes its default BLAS link flags from
  ``numpy.distutils.__config__.blas_opt_info``, which NumPy >= 1.22 no longer
  has, so ``import theano`` fails without an explicit value.  The empty value
  makes Theano's BLAS Ops call NumPy's C API (see ``benchmarks/blas_flags.py``
  for the measured alternative).
* On Python >= 3.11, ``theano.scan.scan_perform_ext`` is made unimportable.
  Its bundled Cython C does not compile against 3.11 headers; Scan falls back
  to its Python outer loop only on ``ImportError``.  The inner graph of every
  Scan is still compiled C.
"""
import configparser
import os
import sys

__all__ = ["theano", "tt", "change_flags", "floatX", "SCAN_C_DISABLED", "USER_SET_BLAS_FLAGS"]

_SCAN_EXT = "theano.scan.scan_perform_ext"


def _flag_names_in_theano_flags(text):
    """Flag names set in a THEANO_FLAGS string (Theano matches them literally)."""
    return {item.split("=", 1)[0].strip() for item in text.split(",") if "=" in item}


def _flag_names_in_theanorc():
    """Flag names set in the user's .theanorc files (same search path as Theano)."""
    default = os.pathsep.join(os.path.expanduser(p) for p in ("~/.theanorc", "~/.theanorc.txt"))
    paths = [os.path.expanduser(p) for p in os.environ.get("THEANORC", default).split(os.pathsep)]
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read([p for p in paths if os.path.isfile(p)])
    except configparser.Error:
        return set()
    names = set()
    for section in parser.sections():
        for key in parser[section]:
            names.add(key if section == "global" else f"{section}__{key}")
    return names


def _user_sets(flag):
    return flag in _flag_names_in_theano_flags(os.environ.get("THEANO_FLAGS", "")) or (
        flag in _flag_names_in_theanorc()
    )


USER_SET_BLAS_FLAGS = _user_sets("blas__ldflags")

if "theano" not in sys.modules and not USER_SET_BLAS_FLAGS:
    existing = os.environ.get("THEANO_FLAGS", "")
    os.environ["THEANO_FLAGS"] = ",".join(filter(None, [existing, "blas__ldflags="]))

SCAN_C_DISABLED = sys.version_info >= (3, 11) and _SCAN_EXT not in sys.modules
if SCAN_C_DISABLED:
    # A None entry makes `from . import scan_perform_ext` raise ImportError.
    sys.modules[_SCAN_EXT] = None

if not USER_SET_BLAS_FLAGS:
    import logging

    class _DropChosenBlasNotice(logging.Filter):
        """The empty BLAS flags are our choice; Theano's notice about them is noise."""

        def filter(self, record):
            return "NumPy C-API based implementation for BLAS" not in record.getMessage()

    logging.getLogger("theano.tensor.blas").addFilter(_DropChosenBlasNotice())

import theano  # noqa: E402
import theano.tensor as tt  # noqa: E402

change_flags = theano.config.change_flags
floatX = theano.config.floatX
