"""The Theano compat layer: flags set before import, the user's own flags win."""
import os
import subprocess
import sys

import numpy as np
import pytest

import l2hmc_theano._theano as compat
from l2hmc_theano._theano import change_flags, theano, tt


def run_python(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("THEANO_FLAGS", "THEANORC")}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1], out.stderr


SHOW = "import os, l2hmc_theano, theano; print(repr(theano.config.blas__ldflags), theano.config.floatX)"
BUNDLED = compat.bundled_openblas_ldflags()
ON_SCIPY_WHEEL = sys.platform.startswith("linux") and BUNDLED != ""


def test_import_works_without_any_user_flags():
    line, err = run_python(SHOW, THEANORC=os.devnull)
    assert line == f"{BUNDLED!r} float64"
    assert "NumPy C-API based implementation for BLAS" not in err
    assert "did not find a dynamic library" not in err


def test_c_modules_are_built_without_debug_information_unless_the_user_sets_cxxflags():
    show = "import l2hmc_theano, theano; print(theano.config.gcc__cxxflags.split()[0])"
    assert run_python(show, THEANORC=os.devnull)[0] == "-g0"
    assert run_python(show, THEANORC=os.devnull, THEANO_FLAGS="gcc__cxxflags=-O2")[0] == "-O2"


def test_numpy_blas_on_request():
    line, _ = run_python(SHOW, THEANORC=os.devnull, L2HMC_BLAS="numpy")
    assert line == "'' float64"


@pytest.mark.skipif(not ON_SCIPY_WHEEL, reason="needs SciPy's Linux wheel (its bundled OpenBLAS)")
def test_bundled_openblas_gives_blas_ops_c_code():
    """Dot22, Gemm, Gemv and Ger run as C code linked to SciPy's OpenBLAS, with NumPy's results."""
    assert "-l:libopenblas" in BUNDLED and theano.config.blas__ldflags == BUNDLED == compat.BLAS_LDFLAGS
    rng = np.random.default_rng(0)
    with change_flags(compute_test_value="off"):
        A, B, C = tt.matrix("A"), tt.matrix("B"), tt.matrix("C")
        u, w = tt.vector("u"), tt.vector("w")
        f = theano.function([A, B, C, u, w], [tt.dot(A, B), C + 0.5 * tt.dot(A, B), tt.dot(A, u), A + tt.outer(w, u)])
    names = {type(node.op).__name__: hasattr(thunk, "cthunk") for node, thunk in zip(f.maker.fgraph.toposort(), f.fn.thunks)}
    assert {"Dot22", "CGemv", "CGer"} <= set(names) and all(names.values()), names
    a, b, c = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    x, y = rng.normal(size=4), rng.normal(size=5)
    for ours, exact in zip(f(a, b, c, x, y), (a @ b, c + 0.5 * a @ b, a @ x, a + np.outer(y, x))):
        np.testing.assert_allclose(ours, exact, rtol=1e-12, atol=1e-12)


def test_user_theano_flags_win():
    line, _ = run_python(SHOW, THEANO_FLAGS="floatX=float32", THEANORC=os.devnull)
    assert line == f"{BUNDLED!r} float32"
    # A user's own blas__ldflags is kept as given (here a library that does not exist), also
    # when it is quoted to hold commas, as Theano reads it.
    line, _ = run_python(SHOW, THEANO_FLAGS="blas__ldflags=-lnot_a_real_blas", THEANORC=os.devnull)
    assert line == "'-lnot_a_real_blas' float64"
    line, _ = run_python(SHOW, THEANO_FLAGS='floatX=float64,"blas__ldflags=-lnot_a_real_blas -Wl,-O1"',
                         THEANORC=os.devnull)
    assert line == "'-lnot_a_real_blas -Wl,-O1' float64"
    # And an explicitly empty value (NumPy's C API) is the user's too.
    line, _ = run_python(SHOW, THEANO_FLAGS="blas__ldflags=", THEANORC=os.devnull)
    assert line == "'' float64"


def test_user_theanorc_wins(tmp_path):
    rc = tmp_path / "theanorc"
    rc.write_text("[blas]\nldflags = -lnot_a_real_blas\n")
    line, _ = run_python(SHOW, THEANORC=str(rc))
    assert line == "'-lnot_a_real_blas' float64"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the Scan C extension is disabled on 3.11+ only")
def test_scan_uses_python_outer_loop_and_runs():
    assert compat.SCAN_C_DISABLED
    with pytest.raises(ImportError):
        from theano.scan import scan_perform_ext  # noqa: F401
    with change_flags(compute_test_value="off"):
        x = tt.vector("x")
        ys, _ = theano.scan(lambda prev: 2 * prev, outputs_info=[x], n_steps=4)
        f = theano.function([x], ys[-1])
    np.testing.assert_array_equal(f(np.array([1.0, -0.5])), [16.0, -8.0])


def test_pymc3_may_be_imported_before_l2hmc_theano():
    """In an environment where the package is installed (its start-up file in site-packages), a
    program may import PyMC3 first: Theano gets the flags l2hmc_theano would have set, and
    l2hmc_theano finds them set."""
    env = {k: v for k, v in os.environ.items() if k != "THEANO_FLAGS"}
    code = ("import pymc3, theano; import l2hmc_theano._theano as c; "
            "print(theano.config.blas__ldflags == c.BLAS_LDFLAGS, c.SCAN_C_DISABLED, 'hook' if "
            "pymc3.__name__ else '')")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", str(sys.version_info >= (3, 11)), "hook"]
    bare = subprocess.run([sys.executable, "-S", "-c", "import sys; print('theano' in sys.modules)"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert bare.stdout.strip() == "False"  # the start-up file imports nothing heavy


def test_every_module_imports_theano_through_the_compat_layer():
    import pathlib

    src = pathlib.Path(compat.__file__).parent
    offenders = [
        p.name for p in src.glob("*.py")
        if p.name not in ("_theano_backend.py", "_theano_fixes.py", "_theano_build.py") and any(
            line.lstrip().startswith(("import theano", "from theano"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []


def _grad_scan_inner_nodes(grads):
    """Inner nodes (before optimisation) of the gradient's Scan ops in ``grads``."""
    from theano.graph.basic import ancestors, applys_between
    from theano.scan.op import Scan

    scans = {v.owner for v in ancestors(grads) if v.owner is not None and isinstance(v.owner.op, Scan)}
    return sum(len(list(applys_between(n.op.inputs, n.op.outputs))) for n in scans if n.op.name.startswith("grad_of"))


def test_scan_gradient_is_theanos_with_fewer_nodes():
    """The shared forced_replace (see _theano_fixes' docstring): same gradient values, fewer inner nodes."""
    assert "scan_grad_shared_replace" in compat.COMPILE_FIXES
    rng = np.random.default_rng(0)
    params = [theano.shared(rng.normal(size=shape) * 0.3, name=name)
              for name, shape in (("W", (3, 3)), ("U", (3, 3)), ("b", (3,)), ("c", (3,)))]
    W, U, b, c = params

    def build():
        with change_flags(compute_test_value="off"):
            x = tt.matrix("x")

            def step(h, g):
                h_new = tt.tanh(tt.dot(h, W) + g * tt.exp(c) + b)
                return h_new, tt.dot(h_new, U) * h_new

            (hs, gs), _ = theano.scan(step, outputs_info=[x, tt.ones_like(x)], n_steps=4)
            grads = tt.grad((hs[-1] ** 2).sum() + gs[-1].sum(), params)
        return theano.function([x], grads), _grad_scan_inner_nodes(grads)

    with compat.compile_fixes():
        patched_fn, patched_nodes = build()
    theano_fn, theano_nodes = build()  # Theano's own L_op, outside the block
    x0 = rng.normal(size=(5, 3))
    for ours, theirs in zip(patched_fn(x0), theano_fn(x0)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    assert patched_nodes < theano_nodes


def test_ops_with_empty_props_get_a_versioned_c_module_key():
    """Shape (``__props__ == ()``) compiled once and cached, not by gcc in every process."""
    from theano.graph.fg import FunctionGraph
    from theano.link.c.basic import CLinker

    assert "versioned_empty_props" in compat.COMPILE_FIXES
    assert theano.tensor.basic.Shape.__props__ == ()  # what made Theano call the module unversioned
    with change_flags(compute_test_value="off"):  # pymc3, once imported, sets it to "raise"
        x = tt.matrix("x")
        fgraph = FunctionGraph([x], [x.shape], clone=True)
    version, _ = CLinker().accept(fgraph).cmodule_key()  # in place everywhere (a cache key only)
    assert version != ()
    linker = CLinker().accept(fgraph)
    theirs = CLinker.cmodule_key_.__wrapped__(linker, linker.fgraph, linker.no_recycling,
                                              compile_args=linker.compile_args(), libraries=linker.libraries(),
                                              header_dirs=linker.header_dirs(), c_compiler=linker.c_compiler())
    assert theirs[0] == ()  # Theano's own key: unversioned


BUILD = r"""
import json, os, sys
import numpy as np
import l2hmc_theano._theano as compat
from l2hmc_theano._theano import theano, tt, change_flags
with change_flags(compute_test_value="off"):
    x, y = tt.matrix("x"), tt.vector("y")
    z = tt.tanh(x) * tt.exp(y) + tt.sqr(x).sum(axis=1, keepdims=True) - tt.log1p(tt.abs_(x))
    # A scan whose inner graph shares C modules with the outer one (its own link, nested).
    steps, _ = theano.scan(lambda h: tt.arctan(tt.tanh(h) * tt.exp(y)) + tt.sqr(h).sum(axis=1, keepdims=True),
                           outputs_info=[x], n_steps=3)
    last = steps[-1]
    with compat.compile_fixes():
        f = theano.function([x, y], [z, tt.arctan(z).max(axis=0), tt.cosh(y) / (1 + tt.sin(y) ** 2), last,
                                     tt.arctan(tt.tanh(last) * tt.exp(y)) + tt.sqr(last).sum(axis=1, keepdims=True)])
rng = np.random.default_rng(0)
a, b = rng.normal(size=(4, 3)), rng.normal(size=3)
out = f(a, b)
exact = np.tanh(a) * np.exp(b) + (a ** 2).sum(axis=1, keepdims=True) - np.log1p(np.abs(a))
step = lambda h: np.arctan(np.tanh(h) * np.exp(b)) + (h ** 2).sum(axis=1, keepdims=True)
h = a
for _ in range(3):
    h = step(h)
ok = all(np.allclose(o, e) for o, e in zip(out, (exact, np.arctan(exact).max(axis=0), np.cosh(b) / (1 + np.sin(b) ** 2),
                                                 h, step(h))))
counts = compat.PARALLEL_BUILD.counts if compat.PARALLEL_BUILD is not None else None
print("RESULT " + json.dumps({"ok": bool(ok), "counts": counts}))
"""


def _cached_modules(compiledir):
    return sorted(os.path.basename(os.path.dirname(p)) for p in
                  __import__("glob").glob(os.path.join(compiledir, "tmp*", "key.pkl")))


@pytest.mark.skipif(compat.PARALLEL_BUILD is None or compat.PARALLEL_BUILD.workers < 2,
                    reason="the parallel C build needs 2 or more cores")
def test_parallel_c_build_fills_the_cache_as_theano_does(tmp_path):
    """Cold: the missing modules are built on several cores and cached where Theano caches
    them (as many modules as a serial build caches); the results are right, nothing is left
    in the temporary directory, and a warm process builds nothing."""
    import json

    def run(compiledir, parallel):
        tmp = tmp_path / f"tmp-{parallel}"
        tmp.mkdir(exist_ok=True)
        line, _ = run_python(BUILD, THEANO_FLAGS=f"compiledir={compiledir}", THEANORC=os.devnull, TMPDIR=str(tmp),
                             L2HMC_PARALLEL_BUILD="1" if parallel else "0")
        assert line.startswith("RESULT ")
        assert list(tmp.iterdir()) == []
        return json.loads(line[len("RESULT "):])

    parallel_dir, serial_dir = tmp_path / "parallel", tmp_path / "serial"
    cold = run(parallel_dir, True)
    assert cold["ok"] and cold["counts"]["built"] >= 3 and cold["counts"]["failed"] == 0
    assert cold["counts"]["taken"] == cold["counts"]["built"]
    serial = run(serial_dir, False)
    assert serial["ok"] and serial["counts"] is None
    assert len(_cached_modules(parallel_dir)) == len(_cached_modules(serial_dir)) > 0
    before = _cached_modules(parallel_dir)
    warm = run(parallel_dir, True)
    assert warm["ok"] and warm["counts"]["built"] == 0
    assert _cached_modules(parallel_dir) == before


def test_ops_with_c_code_from_files_have_the_same_version_in_every_process():
    """DimShuffle's cache version does not depend on Python's salted str hash."""
    assert "stable_external_c_version" in compat.COMPILE_FIXES
    show = ("import l2hmc_theano._theano as c, theano.tensor as tt; "
            "print(tt.elemwise.DimShuffle((False, False), (1, 0)).c_code_cache_version())")
    first, _ = run_python(show, PYTHONHASHSEED="1", THEANORC=os.devnull)
    second, _ = run_python(show, PYTHONHASHSEED="2", THEANORC=os.devnull)
    assert first == second
    theirs = ("import l2hmc_theano._theano as c, theano.tensor as tt, theano.graph.op as o; "
              "op = tt.elemwise.DimShuffle((False, False), (1, 0)); "
              "print(o.ExternalCOp.c_code_cache_version.__wrapped__(op))")
    assert run_python(theirs, PYTHONHASHSEED="1", THEANORC=os.devnull)[0] != run_python(
        theirs, PYTHONHASHSEED="2", THEANORC=os.devnull)[0]  # Theano's own: a new version per process


@pytest.mark.skipif(compat.PARALLEL_BUILD is None or compat.PARALLEL_BUILD.workers < 2,
                    reason="the parallel C build needs 2 or more cores")
def test_parallel_c_build_steps_aside_when_it_cannot_build(tmp_path):
    """Its temporary directories cannot be made: Theano builds every module itself, and the
    function works."""
    import json

    refuse = ("import tempfile\n_mkdtemp = tempfile.mkdtemp\n"
              "def mkdtemp(*args, prefix=None, **kwargs):\n"
              "    if prefix == 'l2hmc-theano-build-':\n"
              "        raise PermissionError('no temporary directory')\n"
              "    return _mkdtemp(*args, prefix=prefix, **kwargs)\n"
              "tempfile.mkdtemp = mkdtemp\n")
    line, _ = run_python(refuse + BUILD, THEANO_FLAGS=f"compiledir={tmp_path / 'cache'}", THEANORC=os.devnull)
    result = json.loads(line[len("RESULT "):])
    assert result["ok"] and result["counts"]["built"] == 0 and result["counts"]["taken"] == 0
    assert len(_cached_modules(tmp_path / "cache")) > 0


DEDUPE = r"""
import json
import l2hmc_theano._theano as compat
from l2hmc_theano._theano import theano, tt, change_flags
with change_flags(compute_test_value="off"):
    x = tt.matrix("x")
    fgraph = theano.graph.fg.FunctionGraph([x], [tt.tanh(x) * 2 + tt.exp(x).sum(axis=0)])
    theano.compile.mode.get_default_mode().optimizer.optimize(fgraph)
build = compat.PARALLEL_BUILD
with compat.compile_fixes():
    first = build.missing(fgraph.toposort())
    some = sorted(first)[0]
    build.built[some] = "elsewhere"  # as if built by an enclosing link and not yet taken
    second = build.missing(fgraph.toposort())
build.built.clear()
print("RESULT " + json.dumps({"first": sorted(first), "second": sorted(second), "some": some}))
"""


@pytest.mark.skipif(compat.PARALLEL_BUILD is None, reason="the parallel C build is not installed")
def test_parallel_c_build_does_not_build_a_module_it_already_holds(tmp_path):
    """A module built for an enclosing link (a Scan's outer graph) and not yet taken is not
    built again for the inner one: the second copy would be lost, and left on disk."""
    import json

    line, _ = run_python(DEDUPE, THEANO_FLAGS=f"compiledir={tmp_path / 'cache'}", THEANORC=os.devnull)
    result = json.loads(line[len("RESULT "):])
    assert len(result["first"]) >= 1
    assert result["second"] == [h for h in result["first"] if h != result["some"]]


def test_subprocesses_inherit_the_users_theano_flags_not_the_packages():
    """The flags are in THEANO_FLAGS for Theano's import only: afterwards the environment (which a
    subprocess inherits) holds the user's own value again, or none, while Theano keeps the flags;
    also when PyMC3 imports Theano first (the start-up hook)."""
    show = ("import os, {first}; import theano; "
            "print(repr(os.environ.get('THEANO_FLAGS')), theano.config.gcc__cxxflags.split()[0], "
            "theano.config.blas__ldflags == l2hmc_theano._theano.BLAS_LDFLAGS)")
    for first in ("l2hmc_theano", "pymc3, l2hmc_theano"):
        code = show.format(first=first)
        assert run_python(code, THEANORC=os.devnull)[0] == "None -g0 True"
        assert run_python(code, THEANORC=os.devnull, THEANO_FLAGS="floatX=float64")[0] == "'floatX=float64' -g0 True"


def _in_place():
    """[(owner, name)] of the fixes' replacements that are in place now."""
    return [(owner, name) for owner, name, _, value in compat.PATCHES.replaced
            if (vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name, None)) is value]


def test_theano_is_its_own_outside_the_packages_compiles():
    """The fixes to how graphs are built and compiled replace Theano's attributes within
    ``compile_fixes()`` only (nested blocks keep them until the outermost ends): a program that
    imports the package compiles with Theano's own.  Only the two cache-key fixes are everywhere."""
    replaced = compat.PATCHES.replaced
    names = {name for _, name, _, _ in replaced}
    assert {"L_op", "forced_replace"} <= names
    if compat.PARALLEL_BUILD is not None:
        assert {"make_all", "compile_cmodule"} <= names
    assert {name for _, name in compat.PATCHES.everywhere} == {"cmodule_key_", "c_code_cache_version"}
    assert not names & {name for _, name in compat.PATCHES.everywhere}
    assert _in_place() == []
    for owner, name, own, _ in replaced:
        assert (vars(owner).get(name) if isinstance(owner, type) else getattr(owner, name)) is own
    everything = [(owner, name) for owner, name, _, _ in replaced]
    with compat.compile_fixes():
        assert _in_place() == everything
        with compat.compile_fixes():
            assert _in_place() == everything
        assert _in_place() == everything
    assert _in_place() == []
    with pytest.raises(RuntimeError), compat.compile_fixes():
        raise RuntimeError("a compile that fails")
    assert _in_place() == []


def test_the_packages_compiles_run_with_the_fixes():
    """A sampler's compiled functions are built and compiled with every fix in place."""
    from l2hmc_theano.compile_cache import CompiledFunctions

    seen = []

    def build():
        seen.append(_in_place())
        x = tt.vector("x")
        return [x], 2 * x

    fn = CompiledFunctions().get_or_compile("probe", build)
    np.testing.assert_allclose(fn(np.ones(2)), [2.0, 2.0])
    assert seen == [[(owner, name) for owner, name, _, _ in compat.PATCHES.replaced]]
    assert _in_place() == []
