"""fold_shared: frozen shared variables, and what is computed from them alone, become constants."""
import numpy as np
import pytest

from l2hmc_theano._theano import change_flags, floatX, theano, tt
from l2hmc_theano.constants import fold_shared


@pytest.fixture(autouse=True)
def no_test_values():
    with change_flags(compute_test_value="off"):  # pymc3, once imported, sets it to "raise"
        yield


def _shared(value, name):
    return theano.shared(np.asarray(value, dtype=floatX), name=name)


def test_folded_graph_computes_the_same_and_keeps_only_input_dependent_nodes():
    rng = np.random.default_rng(0)
    W = _shared(rng.normal(size=(3, 4)), "W")
    b = _shared(rng.normal(size=4), "b")
    log_scale = _shared(rng.normal(size=4), "log_scale")
    data = _shared(rng.normal(size=4), "data")  # not frozen: stays a shared variable
    x = tt.matrix("x", dtype=floatX)
    out = tt.exp(log_scale) * tt.tanh(tt.dot(x, W) + b) + data
    (folded,) = fold_shared([out], [W, b, log_scale])

    inputs = set(theano.graph.basic.graph_inputs([folded]))
    assert not inputs & {W, b, log_scale} and data in inputs
    # exp(log_scale) and the broadcast b are constants now: no node reads only constants.
    for node in theano.graph.basic.io_toposort(list(inputs), [folded]):
        assert not all(isinstance(i, theano.graph.basic.Constant) for i in node.inputs), node
    value = rng.normal(size=(5, 3))
    expected = theano.function([x], out)(value)
    np.testing.assert_allclose(theano.function([x], folded)(value), expected, rtol=1e-15)
    # The constants hold the values at folding time; the original graph follows the shared variables.
    b.set_value(b.get_value() + 1.0)
    np.testing.assert_allclose(theano.function([x], folded)(value), expected, rtol=1e-15)
    assert np.abs(theano.function([x], out)(value) - expected).max() > 1e-3


def test_nothing_frozen_in_the_graph_leaves_it_as_it_is():
    x = tt.vector("x", dtype=floatX)
    unused = _shared(np.ones(2), "unused")
    out = 2.0 * x
    assert fold_shared([out], [unused]) == [out]
