"""Nested R-hat (Margossian et al. 2024) against the equations, known cases and ArviZ."""
import arviz as az
import numpy as np
import pytest

from l2hmc_theano.diagnostics import idata_nested_rhat, nested_rhat


def loop_nested_rhat(f, labels):
    """The paper's equations with plain loops; ``f`` ``(chains, draws)``, ``labels`` one per chain."""
    groups = {}
    for chain, label in enumerate(labels):
        groups.setdefault(label, []).append(f[chain])
    K, M, N = len(groups), len(next(iter(groups.values()))), f.shape[1]
    superchain_means, within = [], []
    for chains in groups.values():
        chain_means = [sum(c) / N for c in chains]
        mean_k = sum(chain_means) / M
        superchain_means.append(mean_k)
        b_k = sum((cm - mean_k) ** 2 for cm in chain_means) / (M - 1) if M > 1 else 0.0
        w_k = sum(sum((v - cm) ** 2 for v in c) / (N - 1) for c, cm in zip(chains, chain_means)) / M if N > 1 else 0.0
        within.append(b_k + w_k)
    overall = sum(superchain_means) / K
    B = sum((s - overall) ** 2 for s in superchain_means) / (K - 1)
    W = sum(within) / K
    return (1 + B / W) ** 0.5


@pytest.mark.parametrize("n_draws", [5, 1])
def test_matches_loop_computation(n_draws):
    rng = np.random.default_rng(1)
    K, M = 3, 4
    # superchain k has its own offset and scale, so B, Bt_k and Wt_k all matter
    x = rng.normal(size=(K * M, n_draws)) * np.repeat([0.5, 1.0, 2.0], M)[:, None] + np.repeat([0.0, 1.0, -0.7], M)[:, None]
    expected = loop_nested_rhat(x, np.repeat(np.arange(K), M))
    assert abs(expected - 1.0) > 1e-3
    assert nested_rhat(x, K) == pytest.approx(expected, rel=0, abs=1e-12)
    # the same superchains given as shuffled labels
    perm = rng.permutation(K * M)
    labels = np.repeat([7, 2, 5], M)[perm]
    assert nested_rhat(x[perm], labels) == pytest.approx(expected, rel=0, abs=1e-12)
    assert loop_nested_rhat(x[perm], labels) == pytest.approx(expected, rel=0, abs=1e-12)
    # extra trailing dims are computed element by element
    y = rng.normal(size=(K * M, n_draws, 2, 3)) + rng.normal(size=(K * M, 1, 2, 3))
    got = nested_rhat(y, K)
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert got[i, j] == pytest.approx(loop_nested_rhat(y[:, :, i, j], np.repeat(np.arange(K), M)),
                                              rel=0, abs=1e-12)


def test_well_mixed_iid_is_below_threshold():
    # 64 chains of iid N(0, 1), K = 16 superchains of M = 4 chains, N = 50 draws.
    # B is the unbiased variance of K superchain means of M*N = 200 iid draws: E[B] = 1/200,
    # and B ~ (1/200) chi2_15 / 15.  E[W] = E[Bt_k] + E[Wt_k] = 1/N + 1 = 1.02.
    # So B/W is about 0.0049 (nR about 1.0025); nR < 1.01 needs B/W < 0.0201, about 4.1 times
    # its mean, i.e. chi2_15 > ~62: probability ~1e-7 per draw set.
    K, M, N = 16, 4, 50
    expected_ratio = (1.0 / (M * N)) / (1.0 + 1.0 / N)
    ratios = []
    for seed in range(200):
        x = np.random.default_rng(seed).normal(size=(K * M, N))
        value = nested_rhat(x, K)
        assert 1.0 <= value < 1.01
        ratios.append(value ** 2 - 1.0)
    # the mean of 200 ratios has a relative sd of about sqrt(2/15)/sqrt(200) = 2.6%
    assert np.mean(ratios) == pytest.approx(expected_ratio, rel=0.15)


def test_separated_modes_are_flagged():
    K, M, N = 8, 4, 50
    rng = np.random.default_rng(3)
    centres = np.repeat(np.where(np.arange(K) < K // 2, 3.0, -3.0), M)
    x = rng.normal(size=(K * M, N)) + centres[:, None]
    # B is about 72/7 = 10.3 and W about 1.02: nR about 3.3
    assert nested_rhat(x, K) > 1.5
    # the same chains grouped so that every superchain holds both modes do not show it
    mixed = np.arange(K * M) % K
    assert nested_rhat(x, mixed) < nested_rhat(x, K)


def test_one_chain_per_superchain():
    K, N = 8, 20
    rng = np.random.default_rng(4)
    x = rng.normal(size=(K, N)) + 0.3 * rng.normal(size=(K, 1))
    B = np.var(x.mean(axis=1), ddof=1)
    W = np.mean(np.var(x, axis=1, ddof=1))
    value = nested_rhat(x, K)
    assert value == pytest.approx(np.sqrt(1.0 + B / W), rel=0, abs=1e-12)
    assert nested_rhat(x, np.arange(K)) == value
    # ArviZ 0.12's method="identity" is the classic R-hat on unsplit chains,
    # sqrt((N-1)/N + B/W): nested R-hat with M = 1 exceeds it by exactly 1/N in the square.
    classic = az.rhat(x, method="identity")
    assert value ** 2 == pytest.approx(classic ** 2 + 1.0 / N, rel=0, abs=1e-12)
    assert value > classic


@pytest.mark.parametrize("draws_shape, superchains, message", [
    ((8, 10), 1, "at least 2 superchains|integer K >= 2"),
    ((8, 10), np.zeros(8, int), "at least 2"),
    ((8, 10), [0, 0, 0, 1, 1, 1, 1, 1], "same number of chains"),
    ((10, 10), 3, "does not divide the 10 chains"),
    ((8, 10), np.arange(6) % 2, "one label per chain \\(8\\)"),
    ((10,), 2, "shape \\(chains, draws, \\*shape\\)"),
    ((4, 1), 4, "more chains per superchain or more draws"),
])
def test_errors(draws_shape, superchains, message):
    x = np.random.default_rng(5).normal(size=draws_shape)
    with pytest.raises(ValueError, match=message):
        nested_rhat(x, superchains)


def test_idata_nested_rhat():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(8, 30))
    b = rng.normal(size=(8, 30, 2)) + rng.normal(size=(8, 1, 2))
    idata = az.from_dict(posterior={"a": a, "b": b})
    out = idata_nested_rhat(idata, 4)
    assert set(out) == {"a", "b"}
    assert isinstance(out["a"], float)
    assert out["a"] == nested_rhat(a, 4)
    assert out["b"].shape == (2,)
    np.testing.assert_array_equal(out["b"], nested_rhat(b, 4))
    labels = np.arange(8) % 2
    only_b = idata_nested_rhat(idata, labels, var_names="b")
    assert list(only_b) == ["b"]
    np.testing.assert_array_equal(only_b["b"], nested_rhat(b, labels))
