"""Theano's compile path, made faster: each fix an ``install_*`` function of the Theano modules it
changes, installed by :mod:`._theano` once Theano is imported.

Four fixes to Theano's compile path, installed after import (:func:`install_compile_fixes`;
none changes a compiled graph or its C code, only the time to get there):

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
* C modules missing from the cache are built on every core (:class:`ParallelBuild`):
  Theano runs gcc for one node at a time (``benchmarks/compile_time.py`` compares).
  ``L2HMC_PARALLEL_BUILD=0`` turns it off.
"""
import os

import theano

__all__ = ["install_compile_fixes", "install_shared_scan_replace", "install_versioned_empty_props",
           "install_stable_external_cop_version", "ParallelBuild"]


def install_shared_scan_replace(scan_op_module):
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


def install_versioned_empty_props(c_basic):
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


def install_stable_external_cop_version(op_module):
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

    external.c_code_cache_version = c_code_cache_version


class ParallelBuild:
    """Compile a graph's missing C modules on every core before Theano links it node by node.

    Theano's linker makes each node's thunk in turn; a node whose C module is not in the
    compile cache waits for gcc, all on one core.  Before a VM linker makes its
    thunks, this finds the nodes Theano will compile (the key Theano will look up is not in
    the cache) and runs their gcc in a pool of threads, one per core (``gcc`` is a
    subprocess: the threads wait without the GIL), each into its own temporary directory
    outside the compile directory, without importing anything.  Theano's own serial pass
    then asks ``CLinker.compile_cmodule`` for each module, as before; for a module built
    here (same source, so same code hash) that moves the built files into the directory
    Theano chose and imports them there, so the cache holds what Theano would have put
    there.  A module this pass does not foresee, or fails to build, is compiled by Theano
    as before; what is built and not used is deleted when the outermost link ends.
    """

    def __init__(self, cmodule, c_basic, vm):
        import threading

        self.cmodule, self.c_basic, self.vm = cmodule, c_basic, vm
        self.built = {}  # code hash -> directory holding mod.cpp and the built library
        self.counts = {"built": 0, "taken": 0, "failed": 0}
        self.depth = 0
        self.lock = threading.Lock()
        try:
            self.workers = len(os.sched_getaffinity(0))
        except AttributeError:
            self.workers = os.cpu_count() or 1
        self.original_compile_cmodule = c_basic.CLinker.compile_cmodule
        self.original_make_all = vm.VMLinker.make_all

    def install(self):
        import functools

        build = self

        @functools.wraps(self.original_make_all)
        def make_all(linker, *args, **kwargs):
            build.depth += 1
            try:
                if build.workers > 1 and linker.c_thunks is not False and theano.config.cxx:
                    try:
                        build.prebuild(linker.schedule(linker.fgraph))
                    except Exception:  # e.g. no temporary directory: Theano builds them, one at a time
                        pass
                return build.original_make_all(linker, *args, **kwargs)
            finally:
                build.depth -= 1
                if build.depth == 0:
                    build.discard_unused()

        @functools.wraps(self.original_compile_cmodule)
        def compile_cmodule(linker, location=None):
            with build.lock:
                built = build.built.pop(linker.get_dynamic_module().code_hash, None)
            if built is None:
                return build.original_compile_cmodule(linker, location)
            return build.take(linker, built, location)

        self.vm.VMLinker.make_all = make_all
        self.c_basic.CLinker.compile_cmodule = compile_cmodule

    def missing(self, nodes):
        """(code hash, compile arguments) of the nodes' C modules Theano would compile."""
        from theano.graph.basic import Constant
        from theano.graph.fg import FunctionGraph
        from theano.graph.op import COp

        cache = self.c_basic.get_module_cache()
        seen, jobs = set(), {}
        for node in nodes:
            if not isinstance(node.op, COp):
                continue
            signature = (node.op, tuple(i.signature() if isinstance(i, Constant) else i.type for i in node.inputs),
                         tuple(o.type for o in node.outputs))
            try:
                if signature in seen:
                    continue
                seen.add(signature)
            except TypeError:  # an unhashable constant: look it up like the others
                pass
            try:
                node.op.prepare_node(node, {}, None, "c")
                linker = self.c_basic.CLinker().accept(FunctionGraph(node.inputs, node.outputs), no_recycling=[])
                key = linker.cmodule_key()
                if not key or not key[0] or cache._get_from_key(key) is not None:
                    continue  # unversioned (Theano compiles those itself) or cached
                module = linker.get_dynamic_module()
                src_code = module.code()  # sets module.code_hash
                if module.code_hash in jobs or module.code_hash in self.built:
                    continue
                if cache._get_from_hash(self.cmodule.get_module_hash(src_code, key), key) is not None:
                    continue
                jobs[module.code_hash] = dict(
                    src_code=src_code, include_dirs=linker.header_dirs(), lib_dirs=linker.lib_dirs(),
                    libs=linker.libraries(), preargs=linker.compile_args(), compiler=linker.c_compiler())
            except Exception:  # no C code, or anything unforeseen: Theano's own pass decides
                continue
        return jobs

    def prebuild(self, nodes):
        import concurrent.futures
        import shutil
        import tempfile

        jobs = self.missing(nodes)
        if len(jobs) < 2:
            return

        def build(code_hash, job):
            location = tempfile.mkdtemp(prefix="l2hmc-theano-build-")
            try:
                compiler = job.pop("compiler")
                compiler.compile_str(module_name=code_hash, location=location, py_module=False, **job)
                return code_hash, location
            except Exception:
                shutil.rmtree(location, ignore_errors=True)
                return code_hash, None

        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            for code_hash, location in pool.map(lambda item: build(*item), jobs.items()):
                with self.lock:
                    if location is None:
                        self.counts["failed"] += 1
                    elif code_hash in self.built:  # built twice (not expected): keep one
                        shutil.rmtree(location, ignore_errors=True)
                    else:
                        self.built[code_hash] = location
                        self.counts["built"] += 1

    def take(self, linker, built, location):
        """The module built in ``built``, moved into ``location`` (Theano's choice) and imported."""
        import shutil

        if location is None:
            location = self.cmodule.dlimport_workdir(theano.config.compiledir)
        library = f"{linker.get_dynamic_module().code_hash}.{self.cmodule.get_lib_extension()}"
        try:
            for name in ("mod.cpp", library):
                shutil.move(os.path.join(built, name), os.path.join(location, name))
        except OSError:  # the built files are gone: Theano builds the module itself
            return self.original_compile_cmodule(linker, location)
        finally:
            shutil.rmtree(built, ignore_errors=True)
        open(os.path.join(location, "__init__.py"), "w").close()
        self.counts["taken"] += 1
        return self.cmodule.dlimport(os.path.join(location, library))

    def discard_unused(self):
        import shutil

        with self.lock:
            unused, self.built = list(self.built.values()), {}
        for location in unused:
            shutil.rmtree(location, ignore_errors=True)


def _source(function):
    import inspect

    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def install_compile_fixes():
    """Install the fixes this Theano has the code for; returns the names of those installed and the
    :class:`ParallelBuild` (None where not installed)."""
    import importlib

    installed, parallel_build = [], None
    scan_op_module = importlib.import_module("theano.scan.op")
    if hasattr(scan_op_module, "forced_replace") and hasattr(scan_op_module.Scan, "L_op"):
        install_shared_scan_replace(scan_op_module)
        installed.append("scan_grad_shared_replace")
    c_basic = importlib.import_module("theano.link.c.basic")
    if hasattr(getattr(c_basic, "CLinker", None), "cmodule_key_"):
        install_versioned_empty_props(c_basic)
        installed.append("versioned_empty_props")
    op_module = importlib.import_module("theano.graph.op")
    external = getattr(op_module, "ExternalCOp", None)
    if external is not None and "hash(tuple(self.func_codes))" in _source(external.c_code_cache_version):
        install_stable_external_cop_version(op_module)
        installed.append("stable_external_c_version")
    cmodule = importlib.import_module("theano.link.c.cmodule")
    vm = importlib.import_module("theano.link.vm")
    needed = (hasattr(c_basic, "CLinker") and hasattr(c_basic.CLinker, "compile_cmodule")
              and hasattr(vm, "VMLinker") and all(hasattr(cmodule, name) for name in (
                  "get_module_hash", "dlimport", "dlimport_workdir", "get_lib_extension")))
    if needed and os.environ.get("L2HMC_PARALLEL_BUILD", "1") != "0":
        parallel_build = ParallelBuild(cmodule, c_basic, vm)
        parallel_build.install()
        installed.append("parallel_c_build")
    return tuple(installed), parallel_build
