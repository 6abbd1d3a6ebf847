"""Theano's C modules missing from the compile cache, built on every core (one of the compile fixes of
:mod:`._theano_fixes`, in place while the package compiles)."""
import os

import theano

__all__ = ["ParallelBuild"]


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

    def install(self, patches):
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

        patches.replace(self.vm.VMLinker, "make_all", make_all)
        patches.replace(self.c_basic.CLinker, "compile_cmodule", compile_cmodule)

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
