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
