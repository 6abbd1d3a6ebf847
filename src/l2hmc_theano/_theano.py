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

Two fixes to Theano's compile path, installed after import (:func:`_install_compile_fixes`;
neither changes a compiled graph or its C code, only the time to get there):

* Scan's gradient shares its rebuilt nodes.  ``Scan.L_op`` replaces each inner output
  x_t by a placeholder in the gradient of every inner input with
  ``theano.scan.utils.forced_replace``, which clones the whole gradient graph once per
  input: the backward scan of the training step (one gradient per network parameter)
  had ~35,000 inner nodes before optimisation for ~900 distinct ones, and merging them
  back cost ~20 s of its ~40 s compile (eight schools).  The same replacement, made
  once per node for all inputs of one ``L_op`` call, gives the same graph after
  optimisation with ~30x fewer nodes before it.
* Ops whose ``__props__`` is empty (Shape, Alloc, ViewOp, ScalarFromTensor, ...) no
  longer make their C module "unversioned".  ``CLinker.cmodule_key_`` counts an empty
  ``__props__`` tuple as a missing version, so those modules were compiled again by gcc
  in every process (~0.6 s each, 9 of them for the training step) and deleted at exit;
  their ``c_code_cache_version`` still versions them, and now they are cached.
"""
import configparser
import os
import sys

__all__ = ["theano", "tt", "change_flags", "floatX", "SCAN_C_DISABLED", "USER_SET_BLAS_FLAGS", "COMPILE_FIXES"]

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


def _shared_forced_replace(scan_op_module):
    """``Scan.L_op`` with its ``forced_replace`` calls sharing one memo per placeholder."""
    import functools

    from theano.graph.basic import equal_computations

    original_forced_replace = scan_op_module.forced_replace
    original_l_op = scan_op_module.Scan.L_op
    memos = []  # a stack: one {placeholder: {variable: replaced variable}} per active L_op

    def forced_replace(out, x, y):
        """``out`` with every variable that computes the same as ``x`` replaced by ``y`` (as
        Theano's), rebuilding only the nodes that depend on a replacement and reusing the
        ones rebuilt by earlier calls of the same ``L_op`` with the same ``y``."""
        if out is None or not memos:
            return original_forced_replace(out, x, y)
        memo = memos[-1].setdefault(y, {})
        stack = [out]
        while stack:
            var = stack[-1]
            if var in memo:
                stack.pop()
            elif equal_computations([var], [x]):
                memo[var] = y
                stack.pop()
            elif var.owner is None:
                memo[var] = var
                stack.pop()
            else:
                node = var.owner
                pending = [i for i in node.inputs if i not in memo]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                inputs = [memo[i] for i in node.inputs]
                if all(new is old for new, old in zip(inputs, node.inputs)):
                    memo.update((o, o) for o in node.outputs)
                else:
                    memo.update(zip(node.outputs, node.clone_with_new_inputs(inputs, strict=False).outputs))
        return memo[out]

    @functools.wraps(original_l_op)
    def L_op(self, *args, **kwargs):
        memos.append({})
        try:
            return original_l_op(self, *args, **kwargs)
        finally:
            memos.pop()

    scan_op_module.forced_replace = forced_replace
    scan_op_module.Scan.L_op = L_op


def _versioned_empty_props(c_basic):
    """``CLinker.cmodule_key_`` that does not take an empty ``__props__`` for a missing version."""
    import functools

    from theano.link.c.interface import CLinkerObject

    original = c_basic.CLinker.cmodule_key_

    def version(linker, fgraph):
        parts = []
        for node in linker.schedule(fgraph):
            if hasattr(node.op, "c_code_cache_version_apply"):
                parts.append(node.op.c_code_cache_version_apply(node))
            props = getattr(node.op, "__props__", None)
            if props:
                parts.append(props)
            for var in list(node.inputs) + list(node.outputs):
                if isinstance(var.type, CLinkerObject):
                    parts.append(var.type.c_code_cache_version())
        return tuple(parts) if all(parts) else None

    @functools.wraps(original)
    def cmodule_key_(self, fgraph, *args, **kwargs):
        key = original(self, fgraph, *args, **kwargs)
        if key is None or key[0] != ():
            return key
        parts = version(self, fgraph)
        return key if parts is None else (parts, key[1])

    c_basic.CLinker.cmodule_key_ = cmodule_key_


def _install_compile_fixes():
    """Install the fixes this Theano has the code for; returns the names of those installed."""
    import importlib

    installed = []
    scan_op_module = importlib.import_module("theano.scan.op")
    if hasattr(scan_op_module, "forced_replace") and hasattr(scan_op_module.Scan, "L_op"):
        _shared_forced_replace(scan_op_module)
        installed.append("scan_grad_shared_replace")
    c_basic = importlib.import_module("theano.link.c.basic")
    if hasattr(getattr(c_basic, "CLinker", None), "cmodule_key_"):
        _versioned_empty_props(c_basic)
        installed.append("versioned_empty_props")
    return tuple(installed)


#: The compile-time fixes installed (see the module docstring).
COMPILE_FIXES = _install_compile_fixes()
