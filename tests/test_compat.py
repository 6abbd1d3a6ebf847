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


def test_import_works_without_any_user_flags():
    line, err = run_python(SHOW, THEANORC=os.devnull)
    assert line == "'' float64"
    assert "NumPy C-API based implementation for BLAS" not in err


def test_user_theano_flags_win():
    line, _ = run_python(SHOW, THEANO_FLAGS="floatX=float32", THEANORC=os.devnull)
    assert line == "'' float32"
    # A user's own blas__ldflags is kept as given (here a library that does not exist).
    line, _ = run_python(SHOW, THEANO_FLAGS="blas__ldflags=-lnot_a_real_blas", THEANORC=os.devnull)
    assert line == "'-lnot_a_real_blas' float64"


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


def test_every_module_imports_theano_through_the_compat_layer():
    import pathlib

    src = pathlib.Path(compat.__file__).parent
    offenders = [
        p.name for p in src.glob("*.py")
        if p.name != "_theano.py" and any(
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
    """The shared forced_replace (see _theano's docstring): same gradient values, fewer inner nodes."""
    import importlib

    assert "scan_grad_shared_replace" in compat.COMPILE_FIXES
    scan_op = importlib.import_module("theano.scan.op")
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

    patched_fn, patched_nodes = build()
    l_op = scan_op.Scan.L_op
    try:
        scan_op.Scan.L_op = l_op.__wrapped__  # Theano's own L_op (forced_replace then falls back to Theano's)
        theano_fn, theano_nodes = build()
    finally:
        scan_op.Scan.L_op = l_op
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
    version, _ = CLinker().accept(fgraph).cmodule_key()
    assert version != ()
