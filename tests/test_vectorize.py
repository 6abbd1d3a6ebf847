"""The graph vectoriser: batched U and dU equal PyMC3's per-row logp and gradient,
for many distributions and transforms, including rows where logp is -inf."""
import numpy as np
import pytest

import pymc3 as pm
from l2hmc_theano import ModelEnergy
from l2hmc_theano._theano import change_flags, theano, tt
from l2hmc_theano.vectorize import vectorize

RNG = np.random.default_rng(0)
Y = RNG.normal(size=12)
COUNTS = RNG.poisson(3.0, size=12)
DESIGN = RNG.normal(size=(12, 3))
LABELS = (RNG.uniform(size=12) < 0.4).astype(int)


def priors():
    pm.Normal("a", 0.5, 2.0, shape=3)
    pm.HalfCauchy("b", 2.0)
    pm.Gamma("c", 2.0, 1.5)
    pm.Beta("d", 2.0, 3.0, shape=2)
    pm.Exponential("e", 1.3)
    pm.StudentT("f", nu=4, mu=0.2, sigma=1.5)


def likelihoods():
    mu = pm.Normal("mu", 0, 1)
    s = pm.HalfNormal("s", 1.0)
    pm.Normal("y", mu, s, observed=Y)
    rate = pm.Normal("log_rate", 1.0, 1.0)
    pm.Poisson("counts", tt.exp(rate), observed=COUNTS)
    p = pm.Normal("logit_p", 0.0, 1.0)
    pm.Binomial("k", n=10, p=pm.math.invlogit(p), observed=COUNTS.clip(0, 10))


def logistic_regression():
    beta = pm.Normal("beta", 0, 2, shape=3)
    alpha = pm.Normal("alpha", 0, 2)
    pm.Bernoulli("labels", logit_p=alpha + tt.dot(DESIGN, beta), observed=LABELS)


def dirichlet_and_walk():
    pm.Dirichlet("w", a=np.array([1.5, 2.0, 3.0, 1.0]))
    sigma = pm.HalfNormal("sigma", 0.5)
    pm.GaussianRandomWalk("walk", sigma=sigma, shape=6)


def mvnormal_and_deterministic():
    x = pm.MvNormal("x", mu=np.zeros(3), cov=np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 0.5]]),
                    shape=3)
    total = pm.Deterministic("total", x.sum() * 2.0)
    pm.Potential("pull", -0.5 * total ** 2 / 9.0)


def hierarchical_with_indexing():
    """Varying intercepts picked by a group index (radon's shape, smaller)."""
    group = np.random.default_rng(3).integers(0, 5, size=12)
    mu_a = pm.Normal("mu_a", 0, 3)
    sigma_a = pm.HalfNormal("sigma_a", 2)
    a = pm.Normal("a", mu_a, sigma_a, shape=5)
    b = pm.Normal("b", 0, 3)
    eps = pm.HalfCauchy("eps", 2)
    pm.Normal("y_obs", a[group] + b * DESIGN[:, 0], eps, observed=Y)


def constrained_without_transforms():
    """Variables with no transform: rows outside the support have logp = -inf."""
    pm.HalfNormal("h", 1.0, transform=None)
    pm.Uniform("u", 0.0, 1.0, transform=None, shape=2)
    z = pm.Normal("z", 0, 1)
    pm.Potential("positive_z", tt.switch(z > -0.5, 0.0, -np.inf))


BUILDERS = [priors, likelihoods, logistic_regression, dirichlet_and_walk, mvnormal_and_deterministic,
            hierarchical_with_indexing, constrained_without_transforms]


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_vectorised_energy_equals_per_row_pymc3(build):
    with pm.Model() as model:
        build()
    energy = ModelEnergy(model, noncentre=False)  # the model's own logp graph
    reference = model.logp_dlogp_function()
    reference.set_extra_values({})
    stats = {}
    with change_flags(compute_test_value="off"):
        X = tt.matrix("X")
        (logp,) = vectorize([energy._logp], energy._x, X, stats)
        U = -logp
        f = theano.function([X], [U, tt.grad(U.sum(), X)])
    rows = np.random.default_rng(1).normal(0, 1.2, size=(40, energy.dim))
    U, dU = f(rows)
    expected = [reference(r) for r in rows]
    U_ref = np.array([-lp for lp, _ in expected])
    dU_ref = np.array([-g for _, g in expected])
    finite = np.isfinite(U_ref)
    np.testing.assert_array_equal(np.isfinite(U), finite)
    np.testing.assert_allclose(U[finite], U_ref[finite], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dU[finite], dU_ref[finite], rtol=1e-10, atol=1e-10)
    if build is constrained_without_transforms:  # a mix of valid and invalid rows in one batch
        assert 0 < finite.sum() < len(rows)
        assert np.all(U[~finite] == np.inf)
    assert not [k for k in stats if k.endswith("(map)")]


def test_unknown_op_falls_back_to_map_for_that_node_only():
    class Twice(theano.graph.op.Op):
        """An Op the vectoriser has no rule for."""

        __props__ = ()

        def make_node(self, x):
            x = tt.as_tensor_variable(x)
            return theano.graph.basic.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = 2 * inputs[0]

        def grad(self, inputs, output_grads):
            return [2 * output_grads[0]]

    with change_flags(compute_test_value="off"):
        x = tt.vector("x")
        out = (Twice()(x) ** 2).sum() + tt.log(x[0] ** 2)
        X = tt.matrix("X")
        stats = {}
        (batched,) = vectorize([out], x, X, stats)
        f = theano.function([X], [batched, tt.grad(batched.sum(), X)])
    rows = np.random.default_rng(2).normal(size=(5, 3))
    value, grad = f(rows)
    np.testing.assert_allclose(value, (4 * rows ** 2).sum(axis=1) + np.log(rows[:, 0] ** 2), rtol=1e-12)
    expected_grad = 8 * rows
    expected_grad[:, 0] += 2 / rows[:, 0]
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)
    assert stats.get("Twice (map)") == 1 and "Elemwise" in stats


def test_rules_for_dot_join_alloc_and_inc_subtensor():
    """Graphs built by hand with the Ops whose rules the models above do not all reach."""
    rng = np.random.default_rng(4)
    M, w = rng.normal(size=(4, 3)), rng.normal(size=4)
    with change_flags(compute_test_value="off"):
        x = tt.vector("x")
        y = tt.set_subtensor(tt.zeros((2, 3, 3))[:, 1, :], x[0] * x[1])        # batched scalar into (2, 3)
        z = tt.inc_subtensor(tt.alloc(x[2], 3, 2)[1:], tt.outer(x[:2], x[1:]))  # Alloc of a batched value
        m = tt.dot(M, x) + tt.dot(w, tt.dot(tt.outer(tt.constant(w), x), x))  # matrix.vec, vec.vec, both-batched mat.vec
        j = tt.concatenate([x, tt.dot(x, x.dimshuffle(0, "x") * tt.ones((1, 2)))], axis=0)
        mx = tt.max(tt.outer(x, x), axis=0)
        out = y.sum() + (z ** 2).sum() + m.sum() + (j ** 3).sum() + mx.sum()
        X = tt.matrix("X")
        stats = {}
        (batched,) = vectorize([out], x, X, stats)
        f_batched = theano.function([X], [batched, tt.grad(batched.sum(), X)])
        f_row = theano.function([x], [out, tt.grad(out, x)])
    rows = rng.normal(size=(6, 3))
    value, grad = f_batched(rows)
    for i, row in enumerate(rows):
        v, g = f_row(row)
        np.testing.assert_allclose(value[i], v, rtol=1e-12)
        np.testing.assert_allclose(grad[i], g, rtol=1e-10, atol=1e-12)
    assert not [k for k in stats if k.endswith("(map)")], stats


def _row_and_batched(build, dim, rows):
    """``(value, grad, grad of grad . w)`` of ``build(x)`` per row and vectorised, for ``rows`` ``(n, dim)``."""
    with change_flags(compute_test_value="off"):
        x, X = tt.vector("x"), tt.matrix("X")
        out = build(x)
        (batched,) = vectorize([out], x, X)
        g_batched = tt.grad(batched.sum(), X)
        w = tt.constant(np.linspace(-1.0, 2.0, dim))
        f_batched = theano.function([X], [batched, g_batched, tt.grad((g_batched * w).sum(), X)])
        g_row = tt.grad(out, x)
        f_row = theano.function([x], [out, g_row, tt.grad((g_row * w).sum(), x)])
    per_row = [f_row(r) for r in rows]
    expected = [np.array([p[i] for p in per_row]) for i in range(3)]
    return f_batched, f_batched(rows), expected


@pytest.mark.parametrize("shape", [(5,), (5, 2)], ids=["1-d", "2-d"])
def test_gather_along_a_batched_variable(shape):
    """``v[idx]`` with repeated and negative indices: value, gradient and second derivative
    equal the per-row graph's, and no transposed view feeds the Elemwise after the gather."""
    idx = np.array([4, 0, 0, 2, -1, 3, 3, 3, 1, 0])
    size = int(np.prod(shape))
    data = np.random.default_rng(5).normal(size=(len(idx),) + shape[1:])

    def build(x):
        v = x.reshape(shape)
        picked = tt.tanh(v)[idx] * v[2] + v[idx] ** 3   # gathers of a batched expression and of v itself
        return ((picked - data) ** 2).sum() + tt.exp(0.1 * picked).sum()

    rows = np.random.default_rng(6).normal(size=(7, size))
    f_batched, got, expected = _row_and_batched(build, size, rows)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    nodes = f_batched.maker.fgraph.toposort()
    assert any(type(n.op).__name__ == "BatchTake" for n in nodes)
    transposes = [n for n in nodes if isinstance(n.op, tt.elemwise.DimShuffle)
                  and [o for o in n.op.new_order if o != "x"] != sorted(o for o in n.op.new_order if o != "x")]
    assert not transposes, transposes


def test_batch_take_and_batch_inc_ops():
    from l2hmc_theano.batch_take import batch_inc, batch_take

    rng = np.random.default_rng(7)
    idx = np.array([2, 2, 0, -1, 2, 1])
    x_val = rng.normal(size=(6, 3, 2))  # 6 rows: the scatter's 4-row blocks and a remainder
    y_val = rng.normal(size=(6, len(idx), 2))
    with change_flags(compute_test_value="off"):
        x, y = tt.tensor3("x"), tt.tensor3("y")
        f = theano.function([x, y], [batch_take(x, idx), batch_take(x[:, :, 0], idx),
                                     batch_inc(x, y, idx), batch_inc(x[:, :, 1], y[:, :, 0], idx),
                                     batch_inc(x, y, idx, set_instead_of_inc=True)])
    take3, take2, inc3, inc2, set3 = f(x_val, y_val)
    np.testing.assert_array_equal(take3, x_val[:, idx])
    np.testing.assert_array_equal(take2, x_val[:, idx, 0])
    expected = x_val.copy()
    np.add.at(expected, (slice(None), idx), y_val)
    np.testing.assert_allclose(inc3, expected, rtol=1e-15)
    expected = x_val[:, :, 1].copy()
    np.add.at(expected, (slice(None), idx), y_val[:, :, 0])
    np.testing.assert_allclose(inc2, expected, rtol=1e-15)
    expected = x_val.copy()
    expected[:, idx] = y_val
    np.testing.assert_array_equal(set3, expected)
    with pytest.raises(IndexError):
        f(x_val[:, :2], y_val[:, :, :2])  # index 2 is out of bounds for axis 1 of size 2


def test_sum_of_a_bound_selects_row_sums():
    """``Sum(switch(c, v, -inf))`` with a per-row condition (PyMC3's ``bound``) is batched as a
    switch between row sums: equal values and gradients per row, -inf rows, an empty sum."""
    data = np.random.default_rng(8).normal(size=6)

    def build(x):
        valid = x[0] > -0.3
        terms = -0.5 * ((data - x[1]) * tt.exp(-x[0])) ** 2 - x[0]
        empty = x[2:2] ** 2  # shape (0,): its bounded sum is 0 for every row
        return (tt.switch(valid, terms, -np.inf).sum() + tt.switch(valid, empty, -np.inf).sum()
                + tt.switch(x[2] > 0, x[1:3] ** 2, 1.5).sum())

    rows = np.random.default_rng(9).normal(size=(40, 3))
    with change_flags(compute_test_value="off"):
        x, X = tt.vector("x"), tt.matrix("X")
        (batched,) = vectorize([build(x)], x, X)
        f_batched = theano.function([X], [batched, tt.grad(batched.sum(), X)])
        f_row = theano.function([x], [build(x), tt.grad(build(x), x)])
    value, grad = f_batched(rows)
    expected = [f_row(r) for r in rows]
    value_ref, grad_ref = np.array([v for v, _ in expected]), np.array([g for _, g in expected])
    finite = np.isfinite(value_ref)
    assert 0 < finite.sum() < len(rows)
    np.testing.assert_array_equal(value[~finite], value_ref[~finite])
    np.testing.assert_allclose(value[finite], value_ref[finite], rtol=1e-12)
    np.testing.assert_allclose(grad[finite], grad_ref[finite], rtol=1e-12, atol=1e-14)
    # No Switch over the summed (batch, 6) terms is left in the batched graph.
    switches = [v for v in theano.graph.basic.ancestors([batched]) if v.owner
                and isinstance(getattr(v.owner.op, "scalar_op", None), theano.scalar.basic.Switch)]
    assert switches and all(v.ndim == 1 for v in switches)


def test_row_scalar_times_shared_vector_is_an_outer_product():
    """``s * w`` (``s`` a per-row scalar, ``w`` a vector shared by all rows) is batched as the
    outer product of the (batch, 1) scalars and w: per-row values, gradients and second
    derivatives, and the compiled graph has BatchOuter and, for the gradient, BatchRowDot."""
    w_val = np.random.default_rng(10).normal(size=9)
    counts = np.arange(9)  # an int vector: the product takes the scalar's dtype

    def build(x):
        w = tt.constant(w_val)
        fitted = x[0] * w + counts * x[1] + tt.exp(x[2]) * (w ** 2)
        return (tt.tanh(fitted) ** 2).sum() + (x[0] * w).sum() ** 2

    rows = np.random.default_rng(11).normal(size=(6, 3))
    f_batched, got, expected = _row_and_batched(build, 3, rows)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    names = {type(n.op).__name__ for n in f_batched.maker.fgraph.toposort()}
    assert {"BatchOuter", "BatchRowDot"} <= names, names


def test_batch_outer_and_row_dot_ops():
    from l2hmc_theano.batch_products import batch_outer, batch_row_dot

    rng = np.random.default_rng(14)
    s_val, w_val, g_val = rng.normal(size=5), rng.normal(size=7), rng.normal(size=(5, 7))
    with change_flags(compute_test_value="off"):
        s, w, g = tt.vector("s"), tt.vector("w"), tt.matrix("g")
        f = theano.function([s, w, g], [batch_outer(s, w), batch_row_dot(g, w), batch_row_dot(g[:, ::2], w[:4]),
                                        batch_outer(s, tt.arange(3))])
    outer, row_dot, strided, int_outer = f(s_val, w_val, g_val)
    np.testing.assert_array_equal(outer, np.multiply.outer(s_val, w_val))
    np.testing.assert_allclose(row_dot, g_val @ w_val, rtol=1e-14)
    np.testing.assert_allclose(strided, g_val[:, ::2] @ w_val[:4], rtol=1e-14)
    np.testing.assert_array_equal(int_outer, np.multiply.outer(s_val, np.arange(3)))
    with change_flags(compute_test_value="off"):
        theano.gradient.verify_grad(lambda a, b: batch_outer(a, b) ** 2, [s_val, w_val], rng=np.random.RandomState(0))
        theano.gradient.verify_grad(lambda a, b: batch_row_dot(a, b) ** 2, [g_val, w_val], rng=np.random.RandomState(1))


def test_sum_takes_out_what_is_constant_along_its_axes():
    """``Sum(c * v / d - e + 3)`` with per-row scalars c, d, e is batched as ``c * Sum(v) / d - n e + 3 n``:
    per-row values, gradients and second derivatives; only v's own terms stay (batch, n)."""
    data = np.random.default_rng(12).normal(size=(4, 5))

    def build(x):
        terms = -(tt.exp(x[0]) * (data - x[1]) ** 2 / x[2] - tt.log(x[2] ** 2) + 3.0)
        return terms.sum() + (x[1] - terms).sum(axis=1).sum() + (terms * (data - x[2])).sum(axis=0).sum()

    rows = np.random.default_rng(13).normal(size=(8, 3))
    _, got, expected = _row_and_batched(build, 3, rows)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    with change_flags(compute_test_value="off"):
        x, X = tt.vector("x"), tt.matrix("X")
        (batched,) = vectorize([(tt.exp(x[0]) * (data - x[1]) ** 2 / x[2] - tt.log(x[2]) + 3.0).sum()], x, X)
    full_size, seen, stack = [], set(), [batched]
    while stack:  # the graph's (batch, 4, 5) Elemwise nodes, not counting those it only takes shapes of
        v = stack.pop()
        if v in seen or v.owner is None or isinstance(v.owner.op, theano.compile.ops.Shape):
            continue
        seen.add(v)
        if isinstance(v.owner.op, tt.elemwise.Elemwise) and v.ndim == 3:
            full_size.append(v)
        stack.extend(v.owner.inputs)
    assert len(full_size) == 2, [v.owner.op for v in full_size]  # data - x[1] and its square
