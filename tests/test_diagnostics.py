"""Acceptance by region: transitions grouped by where they start."""
import arviz as az
import numpy as np
import pytest

from l2hmc_theano.diagnostics import acceptance_by_region, idata_acceptance_by_region


def test_acceptance_by_region_groups_transitions_into_equal_count_quantile_bins():
    rng = np.random.default_rng(0)
    region = rng.permutation(np.arange(1000.0))
    accept = np.where(region < 200, 0.1, 0.9)        # the lowest fifth accepts poorly
    diverging = region >= 900                          # the top tenth diverges
    rows = acceptance_by_region(region, accept, diverging, n_regions=5)
    assert [r["n"] for r in rows] == [200] * 5
    assert [r["accept"] for r in rows] == pytest.approx([0.1, 0.9, 0.9, 0.9, 0.9])
    assert [r["diverging"] for r in rows] == pytest.approx([0, 0, 0, 0, 0.5])
    assert rows[0]["low"] == 0 and rows[-1]["high"] == 999
    assert all(a["high"] == b["low"] for a, b in zip(rows, rows[1:]))


def test_acceptance_by_region_skips_non_finite_regions_and_checks_lengths():
    rows = acceptance_by_region([np.nan, 1.0, 2.0, np.inf], [0.0, 0.5, 1.0, 0.0], n_regions=2)
    assert [r["n"] for r in rows] == [1, 1] and [r["accept"] for r in rows] == [0.5, 1.0]
    with pytest.raises(ValueError, match="same length"):
        acceptance_by_region([1.0, 2.0], [0.5])


def test_idata_acceptance_is_grouped_by_the_draw_each_transition_started_from():
    """Draw t's acceptance belongs to the transition from draw t - 1: here it is 1 exactly when
    v was below the starts' median at t - 1, so grouping by the previous draw separates 0 from 1
    and grouping by the same draw would not."""
    rng = np.random.default_rng(1)
    v = rng.normal(size=(2, 4000))
    accept = np.zeros_like(v)
    accept[:, 1:] = (v[:, :-1] < np.median(v[:, :-1]))
    idata = az.from_dict(posterior={"v": v, "x": rng.normal(size=(2, 4000, 3))},
                         sample_stats={"accept": accept, "diverging": np.zeros(v.shape, bool)})
    rows = idata_acceptance_by_region(idata, "v", n_regions=2)
    assert [r["accept"] for r in rows] == [1.0, 0.0]
    assert sum(r["n"] for r in rows) == 2 * 3999
    # NUTS's name for the same statistic.
    for name in ("mean_tree_accept", "acceptance_rate"):
        nuts = az.from_dict(posterior={"v": v}, sample_stats={name: accept})
        assert [r["accept"] for r in idata_acceptance_by_region(nuts, "v", n_regions=2)] == [1.0, 0.0]
    with pytest.raises(ValueError, match="no acceptance statistic"):
        idata_acceptance_by_region(az.from_dict(posterior={"v": v}, sample_stats={"lp": v}), "v")
    with pytest.raises(ValueError, match="scalar variable"):
        idata_acceptance_by_region(idata, "x")


def test_acceptance_by_region_on_given_edges_reports_each_regions_share():
    """Against known edges (here a marginal's exact quartiles) a sampler that under-visits a
    region shows it as a small share; empty regions are kept, with no acceptance."""
    region = np.array([-2.0, -0.1, 0.1, 0.2, 1.0, 3.0, 4.0, 5.0])
    accept = np.array([0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0])
    rows = acceptance_by_region(region, accept, edges=[-3.0, 0.0, 2.0])
    assert [r["n"] for r in rows] == [0, 2, 3, 3]
    assert [r["share"] for r in rows] == [0.0, 0.25, 0.375, 0.375]
    assert np.isnan(rows[0]["accept"]) and [r["accept"] for r in rows[1:]] == pytest.approx([0.25, 2 / 3, 1.0])
    assert rows[0]["low"] == -np.inf and rows[-1]["high"] == np.inf and rows[1]["low"] == -3.0
    with pytest.raises(ValueError, match="increasing"):
        acceptance_by_region(region, accept, edges=[1.0, 0.0])
