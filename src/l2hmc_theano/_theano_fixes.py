"""Theano's compile path, made faster: each fix an ``install_*`` function that puts its replacements
of Theano's attributes into a :class:`Patches`, which :mod:`._theano` makes once Theano is imported
(:func:`install_compile_fixes`).  The two that change how the package's graphs are built and
compiled (Scan's gradient, the parallel C build) are in place within ``with compile_fixes():`` only,
where the package builds and compiles its own functions; outside, Theano is its own.  The two that
only let C modules be cached (their cache keys) are in place for the whole process: the C code a
model's construction compiles (PyMC3 computes each variable's test value with the Op's own C
code) is then cached too, not built again in every process (``benchmarks/compile_time.py``'s
"build" column).

Four fixes (none changes a compiled graph or its C code, only the time to get there):

* Scan's gradient shares its rebuilt nodes.  ``Scan.L_op`` replaces each inner output
  x_t by a placeholder in the gradient of every inner input with
  ``theano.scan.utils.forced_replace``, which clones the whole gradient graph once per
  input: the backward scan of the training step (one gradient per network parameter)
  holds tens of times more inner nodes before optimisation than distinct ones, and
  merging them back takes much of its compile.  The same replacement, made once per
  node for all inputs of one ``L_op`` call, gives the same graph after optimisation.
* Ops whose ``__props__`` is empty (Shape, Alloc, ViewOp, ScalarFromTensor, ...) no
  longer make their C module "unversioned".  ``CLinker.cmodule_key_`` counts an empty
  ``__props__`` tuple as a missing version, so those modules were compiled again by gcc
  in every process and deleted at exit;
  their ``c_code_cache_version`` still versions them, and now they are cached.
* An Op whose C code comes from files (DimShuffle, ...) is versioned by a digest of that
  code, not by Python's per-process salted ``hash()`` of it, so its module is cached
  across processes instead of compiled again by each (:func:`install_stable_external_cop_version`).
* C modules missing from the cache are built on every core (:class:`._theano_build.ParallelBuild`):
  Theano runs gcc for one node at a time (``benchmarks/compile_time.py`` compares).
  ``L2HMC_PARALLEL_BUILD=0`` turns it off.
"""
import contextlib
import os
import threading

from ._theano_build import ParallelBuild

__all__ = ["install_compile_fixes", "install_shared_scan_replace", "install_versioned_empty_props",
           "install_stable_external_cop_version", "Patches"]

_ABSENT = object()


class Patches:
    """Replacements of attributes of Theano's modules and classes, in place only within
    :meth:`active` (nested blocks apply them once; the outermost block's end gives Theano its own
    back), or ``everywhere``: from their install on.  One thread compiles at a time within
    :meth:`active`: a second waits for the first's block."""

    def __init__(self):
        self.replaced = []  # (owner, name, Theano's own value or _ABSENT, the replacement), within active()
        self.everywhere = []  # (owner, name), replaced for good
        self.depth = 0
        self.lock = threading.RLock()

    def replace(self, owner, name, value, everywhere=False):
        """Put ``value`` in place of ``owner.name`` within :meth:`active` (``everywhere``: now, for good)."""
        if everywhere:
            setattr(owner, name, value)
            self.everywhere.append((owner, name))
            return
        own = vars(owner).get(name, _ABSENT) if isinstance(owner, type) else getattr(owner, name, _ABSENT)
        self.replaced.append((owner, name, own, value))

    @contextlib.contextmanager
    def active(self):
        """Within the block, the replacements are in place."""
        with self.lock:
            if self.depth == 0:
                for owner, name, _, value in self.replaced:
                    setattr(owner, name, value)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if self.depth == 0:
                    for owner, name, own, _ in reversed(self.replaced):
                        if own is _ABSENT:
                            delattr(owner, name)
                        else:
                            setattr(owner, name, own)


def install_shared_scan_replace(scan_op_module, patches):
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

    patches.replace(scan_op_module, "forced_replace", forced_replace)
    patches.replace(scan_op_module.Scan, "L_op", L_op)


def install_versioned_empty_props(c_basic, patches):
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

    patches.replace(c_basic.CLinker, "cmodule_key_", cmodule_key_, everywhere=True)


def install_stable_external_cop_version(op_module, patches):
    """``ExternalCOp.c_code_cache_version`` from a digest of its C source, not ``hash()``.

    Theano versions an Op whose C code is read from files (DimShuffle and others) by
    ``hash(tuple(self.func_codes))``, a hash of strings, which Python salts differently in
    every process: the module's cache key never matches a cached one, so each process
    compiles it again and adds one more entry to the compile directory.
    """
    import functools
    import hashlib

    external = op_module.ExternalCOp
    original = external.c_code_cache_version

    @functools.wraps(original)
    def c_code_cache_version(self):
        digest = hashlib.sha256("\0".join(self.func_codes).encode("utf-8")).hexdigest()
        version = (int(digest[:15], 16),)
        if hasattr(self, "params_type"):
            version += (self.params_type.c_code_cache_version(),)
        return version

    patches.replace(external, "c_code_cache_version", c_code_cache_version, everywhere=True)


def _source(function):
    import inspect

    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def install_compile_fixes():
    """The fixes this Theano has the code for: returns the names of those installed, the
    :class:`ParallelBuild` (None where not installed) and the :class:`Patches` that apply them."""
    import importlib

    installed, parallel_build, patches = [], None, Patches()
    scan_op_module = importlib.import_module("theano.scan.op")
    if hasattr(scan_op_module, "forced_replace") and hasattr(scan_op_module.Scan, "L_op"):
        install_shared_scan_replace(scan_op_module, patches)
        installed.append("scan_grad_shared_replace")
    c_basic = importlib.import_module("theano.link.c.basic")
    if hasattr(getattr(c_basic, "CLinker", None), "cmodule_key_"):
        install_versioned_empty_props(c_basic, patches)
        installed.append("versioned_empty_props")
    op_module = importlib.import_module("theano.graph.op")
    external = getattr(op_module, "ExternalCOp", None)
    if external is not None and "hash(tuple(self.func_codes))" in _source(external.c_code_cache_version):
        install_stable_external_cop_version(op_module, patches)
        installed.append("stable_external_c_version")
    cmodule = importlib.import_module("theano.link.c.cmodule")
    vm = importlib.import_module("theano.link.vm")
    needed = (hasattr(c_basic, "CLinker") and hasattr(c_basic.CLinker, "compile_cmodule")
              and hasattr(vm, "VMLinker") and all(hasattr(cmodule, name) for name in (
                  "get_module_hash", "dlimport", "dlimport_workdir", "get_lib_extension")))
    if needed and os.environ.get("L2HMC_PARALLEL_BUILD", "1") != "0":
        parallel_build = ParallelBuild(cmodule, c_basic, vm)
        parallel_build.install(patches)
        installed.append("parallel_c_build")
    return tuple(installed), parallel_build, patches
