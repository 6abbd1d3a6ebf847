"""Theano's flags for this stack, set before Theano is imported: no Theano import here.

Theano cannot be imported at all on this stack without two settings (NumPy >= 1.22 has no
``blas_opt_info``, from which Theano computes its default ``blas__ldflags``; on Python >=
3.11 its Scan C extension does not build).  :func:`configure` makes them, and leaves out
debug information from Theano's gcc runs, wherever the user has not set those flags
(a user's own ``THEANO_FLAGS`` or ``.theanorc`` always wins):

* ``blas__ldflags`` links the OpenBLAS of SciPy's Linux wheel (:func:`bundled_openblas_ldflags`),
  so Theano's BLAS Ops run as C code; ``L2HMC_BLAS=numpy`` (or no such library) gives the
  empty value, Theano's NumPy C-API fallback;
* ``gcc__cxxflags=-g0``;
* ``theano.scan.scan_perform_ext`` unimportable on Python >= 3.11: Scan falls back to its
  Python outer loop only on ``ImportError`` (its inner graphs stay compiled C).

``l2hmc_theano`` calls :func:`configure` before it imports Theano.  So that a program may
import PyMC3 (hence Theano) before ``l2hmc_theano``, installing the package puts a ``.pth``
file in site-packages (:data:`PTH_NAME`, :func:`write_pth`) whose one line calls
:func:`install_import_hook` at start-up: a finder that runs :func:`configure` at the first
``import theano`` of the process and does nothing else (no cost for a program that never
imports Theano).  This module is top-level, not in the package, because importing the
package imports Theano.

Theano reads ``THEANO_FLAGS`` from the environment once, when it is imported; the flags are put
there for that import and taken out again once Theano is imported (:func:`restore_environment`),
so the program's subprocesses inherit the user's environment, not this module's choices.
"""
import configparser
import importlib.abc
import importlib.machinery
import os
import sys

__all__ = ["configure", "bundled_openblas_ldflags", "install_import_hook", "restore_environment", "write_pth",
           "PTH_NAME"]

#: The start-up file installed into site-packages.
PTH_NAME = "l2hmc_theano_flags.pth"
PTH_LINE = "import l2hmc_theano_flags; l2hmc_theano_flags.install_import_hook()\n"

_SCAN_EXT = "theano.scan.scan_perform_ext"


def _flag_names_in_theano_flags(text):
    """Flag names set in a THEANO_FLAGS string, split as Theano splits it (commas, with
    shell quoting: ``"blas__ldflags=-L/x -Wl,-rpath,/x"`` is one item)."""
    import shlex

    splitter = shlex.shlex(text, posix=True)
    splitter.whitespace = ","
    splitter.whitespace_split = True
    try:
        items = list(splitter)
    except ValueError:  # unbalanced quotes: Theano will complain itself
        items = text.split(",")
    return {item.split("=", 1)[0].strip() for item in items if "=" in item}


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


#: THEANO_FLAGS as the user's environment held it before :func:`configure` added to it (None: unset),
#: while the additions are still there; ``_UNCHANGED`` otherwise.
_UNCHANGED = object()
_USER_THEANO_FLAGS = _UNCHANGED


def _append_theano_flag(item):
    """Add ``item`` (``name=value``, quoted where the value holds commas) to THEANO_FLAGS, for Theano's
    import (:func:`restore_environment` takes it out again)."""
    global _USER_THEANO_FLAGS
    if _USER_THEANO_FLAGS is _UNCHANGED:
        _USER_THEANO_FLAGS = os.environ.get("THEANO_FLAGS")
    os.environ["THEANO_FLAGS"] = ",".join(filter(None, [os.environ.get("THEANO_FLAGS", ""), item]))


def restore_environment():
    """Give ``THEANO_FLAGS`` back the user's value (or unset it) once Theano has read it: the flags
    :func:`configure` chose are Theano's config from then on, and no subprocess inherits them."""
    global _USER_THEANO_FLAGS
    if _USER_THEANO_FLAGS is _UNCHANGED:
        return
    if _USER_THEANO_FLAGS is None:
        os.environ.pop("THEANO_FLAGS", None)
    else:
        os.environ["THEANO_FLAGS"] = _USER_THEANO_FLAGS
    _USER_THEANO_FLAGS = _UNCHANGED


def _user_sets(flag):
    return flag in _flag_names_in_theano_flags(os.environ.get("THEANO_FLAGS", "")) or (
        flag in _flag_names_in_theanorc()
    )


#: BLAS routines Theano's C code calls (``blas_headers.blas_header_text``'s declarations).
_BLAS_SYMBOLS = ("sgemm_", "dgemm_", "sgemv_", "dgemv_", "sger_", "dger_", "sdot_", "ddot_", "sscal_", "dscal_")
_UNQUOTABLE = frozenset(" \t\n'\",")


def bundled_openblas_ldflags():
    """Link flags for the OpenBLAS in SciPy's Linux wheel, or "" where there is none to use.

    The flags name the file (``-l:<file>``, GNU ld) and set its directory as the
    compiled modules' run path, so they load the same library SciPy loads.  The
    library must load and export every routine Theano's C code declares.  It needs
    the libgfortran beside it, which SciPy's BLAS wrappers load first; Theano
    imports them too (``theano.tensor.blas``), so every process that runs a compiled
    module has both.
    """
    import ctypes
    import pathlib

    if not sys.platform.startswith("linux"):
        return ""
    try:
        import scipy.linalg.blas  # noqa: F401  (loads the bundled OpenBLAS and its libgfortran)
        import scipy
    except ImportError:
        return ""
    libs_dir = pathlib.Path(scipy.__file__).resolve().parent.parent / "scipy.libs"
    for lib in sorted(libs_dir.glob("libopenblas*.so*")):
        if _UNQUOTABLE.intersection(str(lib)):
            continue  # Theano splits ldflags on blanks and THEANO_FLAGS on commas
        try:
            handle = ctypes.CDLL(str(lib))
        except OSError:
            continue
        if all(hasattr(handle, name) for name in _BLAS_SYMBOLS):
            return f"-L{libs_dir} -l:{lib.name} -Wl,-rpath,{libs_dir}"
    return ""


_CHOSEN = None


def configure():
    """Set the flags (see the module docstring) once per process, before Theano is imported;
    returns what was chosen: ``user_set_blas_flags``, ``blas_ldflags`` (None where the user set
    their own, or Theano was imported already), ``no_debug_info``, ``scan_c_disabled``."""
    global _CHOSEN
    if _CHOSEN is not None:
        return _CHOSEN
    user_set_blas_flags = _user_sets("blas__ldflags")
    blas_ldflags = None
    if "theano" not in sys.modules and not user_set_blas_flags:
        blas_ldflags = "" if os.environ.get("L2HMC_BLAS", "").lower() == "numpy" else bundled_openblas_ldflags()
        _append_theano_flag(f'"blas__ldflags={blas_ldflags}"')
    no_debug_info = "theano" not in sys.modules and not _user_sets("gcc__cxxflags")
    if no_debug_info:
        _append_theano_flag("gcc__cxxflags=-g0")
    scan_c_disabled = sys.version_info >= (3, 11) and _SCAN_EXT not in sys.modules
    if scan_c_disabled:
        # A None entry makes `from . import scan_perform_ext` raise ImportError.
        sys.modules[_SCAN_EXT] = None
    if not user_set_blas_flags:
        import logging

        logging.getLogger("theano.tensor.blas").addFilter(_DropChosenBlasNotice())
    _CHOSEN = {"user_set_blas_flags": user_set_blas_flags, "blas_ldflags": blas_ldflags,
               "no_debug_info": no_debug_info, "scan_c_disabled": scan_c_disabled}
    return _CHOSEN


class _DropChosenBlasNotice:
    """A logging filter: Theano's notices about the BLAS flags chosen here are noise (the empty
    value's, and the bundled library's: Theano looks for a file named after the ``-l`` value,
    which ``-l:<file>`` is not)."""

    def filter(self, record):
        message = record.getMessage()
        return not ("NumPy C-API based implementation for BLAS" in message
                    or "did not find a dynamic library in the library_dir" in message)


class _ConfigureBeforeTheano(importlib.abc.MetaPathFinder):
    """Runs :func:`configure` at the first ``import theano``, then lets the import go on, and gives
    the environment back (:func:`restore_environment`) once Theano's package has run."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "theano":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        try:
            configure()
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _RestoringLoader(spec.loader)
                return spec
        except Exception:  # noqa: BLE001: a start-up hook must never break an import
            pass
        return None


class _RestoringLoader(importlib.abc.Loader):
    """Theano's own loader, with :func:`restore_environment` once its package has run."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            self.loader.exec_module(module)
        finally:
            restore_environment()

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self.loader, name)


def install_import_hook():
    """Configure Theano's flags at its first import in this process (see the module docstring)."""
    if "theano" not in sys.modules and not any(isinstance(f, _ConfigureBeforeTheano) for f in sys.meta_path):
        sys.meta_path.insert(0, _ConfigureBeforeTheano())


def write_pth(site_packages=None):
    """Write :data:`PTH_NAME` into ``site_packages`` (default: this interpreter's purelib); returns its path."""
    import sysconfig

    directory = site_packages or sysconfig.get_paths()["purelib"]
    path = os.path.join(directory, PTH_NAME)
    with open(path, "w") as f:
        f.write(PTH_LINE)
    return path


if __name__ == "__main__":
    print(write_pth())
