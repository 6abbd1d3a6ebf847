"""L2HMC as a PyMC3 step method: posterior agreement with NUTS, stats, seeds, compound steps."""
import arviz as az
import numpy as np
import pytest

import pymc3 as pm
import l2hmc_theano
from l2hmc_theano import L2HMC, L2HMCSampler, ModelEnergy
from pymc3.step_methods.arraystep import Competence
from l2hmc_theano.kernel import Step
from l2hmc_theano.targets import eight_schools

STATS = {"accept", "accepted", "diverging", "energy", "energy_error", "step_size", "log_jacobian",
         "direction", "n_steps", "lp"}


@pytest.fixture(scope="module")
def schools():
    model = eight_schools(centred=False)
    with model:
        # The defaults (warm-up, 200 chains), training capped at 500 iterations.
        step = L2HMC(train_steps=500, seed=0, progressbar=False)
    return model, step


def sample(model, step, **kw):
    with model:
        return pm.sample(step=step, return_inferencedata=True, progressbar=False,
                         compute_convergence_checks=False, **kw)


@pytest.mark.slow
def test_posterior_matches_nuts_within_monte_carlo_error(schools):
    model, step = schools
    ours = sample(model, step, draws=1000, tune=500, chains=2, cores=2, random_seed=1)
    with model:
        nuts = sample(model, pm.NUTS(), draws=1000, tune=500, chains=2, cores=2, random_seed=1)
    assert STATS <= set(ours.sample_stats.data_vars)
    for var in ("mu", "tau", "eta"):
        for kind, stat in (("mean", np.mean), ("sd", np.std)):
            a = stat(ours.posterior[var].values.reshape(2000, -1), axis=0)
            b = stat(nuts.posterior[var].values.reshape(2000, -1), axis=0)
            se = np.sqrt(az.mcse(ours, var_names=[var], method=kind)[var].values ** 2
                         + az.mcse(nuts, var_names=[var], method=kind)[var].values ** 2)
            assert np.all(np.abs(a - b) < 4 * se), (var, kind, a, b, se)
    # lp is the model's log density at the returned point, in the transformed space.
    logp = model.fastlogp
    post = ours.posterior
    for draw in (0, 500, 999):
        point = {"mu": post["mu"].values[0, draw], "eta": post["eta"].values[0, draw],
                 "tau_log__": np.log(post["tau"].values[0, draw])}
        assert ours.sample_stats["lp"].values[0, draw] == pytest.approx(logp(point), rel=1e-8)
    assert float(ours.sample_stats["accept"].mean()) > 0.3
    assert set(np.unique(ours.sample_stats["direction"])) == {-1, 1}
    np.testing.assert_array_equal(ours.sample_stats["n_steps"], step.sampler.n_steps)


def test_same_random_seed_same_draws_with_one_and_two_cores(schools):
    model, step = schools
    for cores in (1, 2):
        a = sample(model, step, draws=30, tune=10, chains=2, cores=cores, random_seed=7)
        step.reset_tuning()
        b = sample(model, step, draws=30, tune=10, chains=2, cores=cores, random_seed=7)
        step.reset_tuning()
        np.testing.assert_array_equal(a.posterior["eta"].values, b.posterior["eta"].values)
        assert not np.array_equal(a.posterior["eta"].values[0], a.posterior["eta"].values[1])
        c = sample(model, step, draws=30, tune=10, chains=2, cores=cores, random_seed=8)
        step.reset_tuning()
        assert not np.array_equal(a.posterior["eta"].values, c.posterior["eta"].values)


def test_step_from_a_saved_sampler(schools, tmp_path):
    model, step = schools
    path = step.sampler.save(tmp_path / "schools.npz")
    with model:
        loaded = L2HMC(sampler=path)
        with pytest.raises(TypeError, match="together with a trained sampler"):
            L2HMC(sampler=path, train_steps=10)
    q0 = ModelEnergy(model).start_array()  # the step's flat layout is model.free_RVs order
    np.random.seed(3)
    a = loaded.astep(q0)
    np.random.seed(3)
    b = step.astep(q0)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_compound_step_with_a_discrete_latent():
    """mu ~ N(0, 1), z ~ Bernoulli(0.3), y_i ~ N(mu + 2z, 1): exact posterior by enumeration."""
    y = np.array([1.8, 2.4, 1.1, 2.9])
    with pm.Model() as model:
        z = pm.Bernoulli("z", 0.3)
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y", mu + 2.0 * z, 1.0, observed=y)
        sampler = L2HMCSampler(ModelEnergy(model, vars=[mu]), n_steps=5, step_size=0.3, seed=0)
        step = [L2HMC(vars=[mu], sampler=sampler), pm.BinaryGibbsMetropolis(vars=[z])]
        idata = pm.sample(2000, tune=300, chains=2, cores=1, step=step, random_seed=3,
                          return_inferencedata=True, progressbar=False, compute_convergence_checks=False)
    n = len(y)
    post_var = 1.0 / (1.0 + n)
    weights, means = [], []
    for zv, prior in ((0, 0.7), (1, 0.3)):
        r = y - 2.0 * zv
        m = post_var * r.sum()
        weights.append(prior * np.exp(0.5 * m ** 2 / post_var - 0.5 * (r ** 2).sum()))
        means.append(m)
    weights = np.array(weights) / sum(weights)
    exact_mu = float(weights @ means)
    est_mu = float(idata.posterior["mu"].mean())
    se_mu = float(az.mcse(idata, var_names=["mu"])["mu"])
    assert abs(est_mu - exact_mu) < 4 * se_mu, (est_mu, exact_mu, se_mu)
    est_z = float(idata.posterior["z"].mean())
    se_z = float(az.mcse(idata, var_names=["z"])["z"])
    assert abs(est_z - weights[1]) < 4 * se_z, (est_z, weights[1], se_z)


def test_competence_and_discrete_errors():
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 1)
        k = pm.Poisson("k", 3.0)
    assert L2HMC.competence(mu, True) == Competence.COMPATIBLE
    assert L2HMC.competence(k, True) == Competence.INCOMPATIBLE
    with model, pytest.raises(ValueError, match=r"discrete free variable.*k \(Metropolis\)"):
        L2HMC(vars=[mu, k], sampler=None, train_steps=1)


def test_poor_sampler_warns(schools):
    model, _ = schools
    with model:
        sampler = L2HMCSampler(ModelEnergy(model), step_size=3.0, zero_network=True, seed=0)
        step = L2HMC(sampler=sampler)
        sample(model, step, draws=40, tune=0, chains=1, cores=1, random_seed=1)
    kinds = {w.kind for w in step.warnings()}
    assert kinds >= {pm.backends.report.WarningType.BAD_ACCEPTANCE}
    step.reset_tuning()
    assert step.warnings() == [] and step.tune


def test_a_chains_first_tuning_step_starts_from_a_training_chain():
    """Tuning starts from the sampler's training chains (here all at x = 7, with a step size
    too small to move far); without tuning draws, pm.sample's own start (x = 0) is kept."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0)
    sampler = L2HMCSampler(ModelEnergy(model), step_size=1e-6, zero_network=True, seed=0)
    sampler.history = {"chains": np.full((3, 1), 7.0)}
    with model:
        step = L2HMC(sampler=sampler)
    for cores in (1, 2):
        step.reset_tuning()  # a step used again (pm.sample's workers get it as it is)
        warm = sample(model, step, draws=2, tune=2, chains=2, cores=cores, random_seed=1)
        np.testing.assert_allclose(warm.posterior["x"].values, 7.0, atol=1e-3)
    step.reset_tuning()
    cold = sample(model, step, draws=2, tune=0, chains=2, cores=1, random_seed=1)
    np.testing.assert_allclose(cold.posterior["x"].values, 0.0, atol=1e-3)


def _warmup_draws(model, step, draws=20, tune=10):
    with model:
        idata = pm.sample(draws=draws, tune=tune, chains=1, cores=1, step=step, random_seed=1,
                          discard_tuned_samples=False, return_inferencedata=True, progressbar=False,
                          compute_convergence_checks=False)
    return idata


def test_tuning_draws_after_a_warm_start_cost_nothing_unless_another_step_moves():
    """A chain that starts from a training chain has nothing left to tune: its later tuning
    draws stay put with no proposal.  With another step in a compound, they are real steps."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0)
        pm.Normal("y", 0.0, 1.0)
    sampler = L2HMCSampler(ModelEnergy(model), step_size=0.5, n_steps=3, zero_network=True, seed=0)
    sampler.history = {"chains": np.full((3, 2), 0.3)}
    with model:
        step = L2HMC(sampler=sampler)
    idata = _warmup_draws(model, step)
    tuning, stats = idata.warmup_posterior["x"].values[0], idata.warmup_sample_stats
    assert stats["n_steps"].values[0, 0] == 3 and np.all(stats["n_steps"].values[0, 1:] == 0)
    assert np.all(np.isnan(stats["accept"].values[0, 1:])) and np.all(tuning[1:] == tuning[0])
    assert len(np.unique(idata.posterior["x"].values[0])) > 5  # the draws after tuning move
    assert step._n_draws == 21

    x = model["x"]
    with model:
        part = L2HMC(vars=[x], sampler=L2HMCSampler(ModelEnergy(model, vars=[x]), step_size=0.5, n_steps=3,
                                                     zero_network=True, seed=0))
        part.sampler.history = {"chains": np.full((3, 1), 0.3)}
        idata = _warmup_draws(model, [part, pm.Metropolis(vars=[model["y"]])])
    assert np.all(idata.warmup_sample_stats["n_steps"].values[0] == 3)
    assert len(np.unique(idata.warmup_posterior["x"].values[0])) > 3


def _step_with_transitions(logp, accept, diverging):
    """An L2HMC step whose record of post-tuning transitions is the given one."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0)
        step = L2HMC(sampler=L2HMCSampler(ModelEnergy(model), zero_network=True, seed=0))
    step._transitions = list(zip(logp, accept, diverging))
    step._n_draws, step._n_divergent = len(logp), int(np.sum(diverging))
    step._accept_sum = float(np.sum(accept))
    return step


def test_warnings_locate_a_failure_in_one_region_and_do_not_send_users_to_nuts():
    """A funnel's neck: acceptance 0.02 and every divergence in the fifth of the draws with the
    highest log density, 0.9 elsewhere.  The warnings say where, and advise a non-centred
    parameterization rather than NUTS, which diverges there too."""
    logp = np.linspace(-10.0, 0.0, 1000)
    neck = logp > np.quantile(logp, 0.8)
    accept = np.where(neck, 0.02, 0.9)
    diverging = neck & (np.arange(1000) % 4 == 0)
    warns = {w.kind: w.message for w in _step_with_transitions(logp, accept, diverging).warnings()}
    kinds = pm.backends.report.WarningType
    assert set(warns) == {kinds.BAD_ACCEPTANCE, kinds.DIVERGENCES}
    assert "acceptance is 0.020 in the fifth of the draws with the highest log density (log p > -2" in \
        warns[kinds.BAD_ACCEPTANCE]
    assert "100% of those after draws in the fifth of the draws with the highest" in warns[kinds.DIVERGENCES]
    for message in warns.values():
        assert "non-centred parameterization" in message and "use NUTS" not in message


def test_warnings_send_users_to_nuts_when_l2hmc_fails_everywhere():
    rng = np.random.default_rng(0)
    logp = rng.normal(size=1000)
    warns = {w.kind: w.message for w in _step_with_transitions(logp, np.full(1000, 0.05), rng.uniform(size=1000) < 0.05)
             .warnings()}
    kinds = pm.backends.report.WarningType
    assert "mean acceptance probability is 0.050" in warns[kinds.BAD_ACCEPTANCE]
    assert warns[kinds.DIVERGENCES].endswith("Reduce step_size and retrain, or use NUTS.")
    assert all("use NUTS" in m for m in warns.values())
    # A sampler that works everywhere gets no warning.
    assert _step_with_transitions(logp, np.full(1000, 0.8), np.zeros(1000, bool)).warnings() == []


def test_the_step_records_where_each_transition_started(schools):
    """After tuning, each draw's transition is recorded with the previous draw's log density."""
    model, _ = schools
    with model:
        step = L2HMC(sampler=L2HMCSampler(ModelEnergy(model), step_size=0.3, zero_network=True, seed=0))
    idata = sample(model, step, draws=60, tune=5, chains=1, cores=1, random_seed=2)
    logp, accept, diverging = (np.array(c) for c in zip(*step._transitions))
    lp = idata.sample_stats["lp"].values[0]
    assert len(logp) == 60
    np.testing.assert_allclose(logp[1:], lp[:-1], rtol=1e-12)
    np.testing.assert_allclose(accept, idata.sample_stats["accept"].values[0], rtol=1e-12)
    assert np.isfinite(logp[0])  # the last tuning draw's


def test_the_steps_compiled_call_checks_its_inputs_and_keeps_its_outputs(schools):
    """pm.sample's per-draw call trusts its inputs once converted: wrong shapes fail with the
    shapes it takes; and the arrays of one call are not overwritten by the next (the functions
    keep their intermediate storage between calls)."""
    model, _ = schools
    sampler = L2HMCSampler(ModelEnergy(model), n_steps=3, step_size=0.3, seed=0)
    x = ModelEnergy(model).start_array()[None, :]
    ones = np.ones(1)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 10\)"):
        sampler.mh_step_with_model_values(x[0], np.zeros_like(x), ones, np.zeros(1), ones)
    with pytest.raises(ValueError, match=r"x, v and grad of shape \(batch, 10\)"):
        sampler.mh_step_with_model_values(x, np.zeros_like(x[0]), ones, np.zeros(1), ones)
    with pytest.raises(ValueError, match=r"step_scale and potential of shape \(batch,\)"):
        sampler.mh_step_with_model_values(x, np.zeros_like(x), ones, np.zeros(1), np.ones(2))
    rng = np.random.default_rng(0)
    v1, v2 = rng.normal(size=x.shape), rng.normal(size=x.shape)
    # Lists and float32 are converted, as before.
    first = sampler.mh_step_with_model_values(x.tolist(), v1.astype(np.float32), [1.0], [0.0], [1.0])
    kept = [np.array(a, copy=True) for a in first]
    second = sampler.mh_step_with_model_values(x, v2, -ones, np.zeros(1), ones)
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)
    assert first[4][0] != second[4][0]  # the energies H(x, v) of the two momenta


def test_zero_heads_compile_hmcs_leapfrog_and_each_run_picks_its_step(schools):
    """With the networks' heads zero (training kept plain HMC) the MH step is compiled without
    them and gives the same numbers; pm.sample's step (T <= UNROLL_MAX_STEPS: written out)
    agrees with the scanned batch step; and each pm.sample run picks the step for the networks
    as they stand then: HMC's kernel (warm-up's, T an input) once they are zero, with the same
    numbers as the step compiled without them."""
    from l2hmc_theano.step_graphs import UNROLL_MAX_STEPS

    model, _ = schools
    sampler = L2HMCSampler(ModelEnergy(model), n_steps=3, step_size=0.3, seed=0)
    assert sampler.n_steps <= UNROLL_MAX_STEPS and not sampler.networks_are_zero()
    rng = np.random.default_rng(1)
    x = ModelEnergy(model).start_array()[None, :] + 0.3 * rng.normal(size=(5, sampler.dim))
    inputs = sampler.draw_step_inputs(rng, 5)
    with_networks = sampler.mh_step_with_stats(x, *inputs)
    model_step = sampler.mh_step_with_model_values(x, *inputs)
    for a, b in zip(with_networks[:8], model_step[:8]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    sampler.networks.zero_heads()
    assert sampler.networks_are_zero()
    zeroed = sampler.compiled_mh_step(networks=True)(x, *inputs)
    hmc = sampler.mh_step_with_stats(x, *inputs)
    assert "mh_step_stats_hmc" in sampler.functions
    dots = [n for n in sampler.functions["mh_step_stats_hmc"].maker.fgraph.apply_nodes if "Dot" in str(n.op)
            or "Gemm" in str(n.op)]
    assert not dots, dots  # no network is evaluated
    for a, b in zip(zeroed, hmc):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    assert np.abs(hmc[0] - with_networks[0]).max() > 1e-6  # the networks did change the proposal
    # pm.sample: one run with the networks, then one after their heads are zeroed.
    sampler = L2HMCSampler(ModelEnergy(model), n_steps=3, step_size=0.3, seed=0)
    with model:
        step = L2HMC(sampler=sampler)
    sample(model, step, draws=5, tune=0, chains=1, cores=1, random_seed=0)
    assert compiled_names(step.sampler) == {"mh_step_model", "energy_grad"}  # energy_grad: the first draw's start
    sampler.networks.zero_heads()  # shared with the step's (retargeted) sampler
    sample(model, step, draws=5, tune=0, chains=1, cores=1, random_seed=0)
    assert compiled_names(step.sampler) == {"mh_step_model", "energy_grad"}  # HMC: no compile of its own
    x = ModelEnergy(model).start_array()[None, :] + 0.3 * rng.normal(size=(5, sampler.dim))
    v, d, log_u, scale = sampler.draw_step_inputs(rng, 5)
    inputs = (v, d, log_u, scale * np.array([6.0, 6.0, 1.0, 1.0, 1.0]))  # two far too long steps: rejected
    kernel = sampler.mh_step_with_model_values(x, *inputs)
    sampler.model_step_function = lambda: lambda *args: Step.of_outputs(
        sampler.compiled_mh_step(model_values=True)(*args), model_values=True, carry=True)
    zero_heads_step = sampler.mh_step_with_model_values(x, *inputs)
    assert zero_heads_step.y_proposal is None and kernel.y_proposal is not None  # the HMC kernel's alone
    for field in Step._fields[:-1]:
        np.testing.assert_allclose(getattr(kernel, field), getattr(zero_heads_step, field), rtol=1e-10, atol=1e-10)
    assert 0 < kernel.accepted.sum() < 5  # accepted and rejected chains both checked


def compiled_names(sampler):
    """The names of a sampler's compiled functions (a frozen one's key is (name, fingerprint))."""
    return {k[0] if isinstance(k, tuple) else k for k in sampler.functions}


def test_the_model_step_compiles_the_parameters_in_and_follows_their_changes(schools):
    """pm.sample's step has the sampler's parameters (networks, step size, preconditioner) as
    constants, not shared inputs; after any of them changes, the next call compiles again (the
    old function dropped) and agrees with the batch step, which reads them as shared variables."""
    model, _ = schools
    sampler = L2HMCSampler(ModelEnergy(model), n_steps=3, step_size=0.3, seed=0, preconditioner="diag")
    rng = np.random.default_rng(2)
    x = ModelEnergy(model).start_array()[None, :] + 0.3 * rng.normal(size=(4, sampler.dim))
    inputs = sampler.draw_step_inputs(rng, 4)
    fn = sampler.compiled_mh_step(model_values=True)
    shared_inputs = {i.variable for i in fn.maker.inputs if i.implicit}  # the shared variables it reads
    batch_step_inputs = {i.variable for i in sampler.compiled_mh_step().maker.inputs if i.implicit}
    assert set(sampler.sampling_parameters()) <= batch_step_inputs
    assert not shared_inputs & set(sampler.sampling_parameters())
    weight = sampler.networks.x_net.heads["T"][1]
    changes = [
        lambda: weight.set_value(weight.get_value() + 0.5),
        lambda: sampler.log_step_size.set_value(sampler.log_step_size.get_value() - 0.2),
        lambda: sampler.preconditioner.set(np.full(sampler.dim, 0.1), np.full(sampler.dim, 0.8)),
    ]
    before = sampler.mh_step_with_model_values(x, *inputs)
    for change in changes:
        change()
        batch_step = sampler.mh_step_with_stats(x, *inputs)
        model_step = sampler.mh_step_with_model_values(x, *inputs)
        for a, b in zip(batch_step[:8], model_step[:8]):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        assert (np.abs(model_step.grad - before.grad).max() > 1e-6
                or np.abs(model_step.x - before.x).max() > 1e-6)
        before = model_step
        assert [k[0] for k in sampler.functions if isinstance(k, tuple)] == ["mh_step_model"]  # the old one dropped


def test_the_step_carries_u_and_its_gradient_from_draw_to_draw(schools, monkeypatch):
    """pm.sample's step hands U and dU/dy at its draw on to the next draw (T energy evaluations
    per draw): the same draws and stats as evaluating them afresh at every draw, and only the
    chain's first draw evaluates them."""
    model, _ = schools
    sampler = L2HMCSampler(ModelEnergy(model), n_steps=3, step_size=0.4, seed=0)
    with model:
        step = L2HMC(sampler=sampler)
    evaluated = []
    original = L2HMCSampler.start_state

    def counting(self, x):
        evaluated.append(np.array(x))
        return original(self, x)

    monkeypatch.setattr(L2HMCSampler, "start_state", counting)
    carried = sample(model, step, draws=40, tune=0, chains=1, cores=1, random_seed=4)
    assert len(evaluated) == 1
    fresh_start = L2HMC._start

    def always_afresh(self, q0):
        self._last = None if self._last is None else self._last[:2] + (None, None)
        x = self._warm_start(q0) if self._fresh_chain else self._to_sampling(q0)
        return (x, *self.sampler.start_state(x))

    monkeypatch.setattr(L2HMC, "_start", always_afresh)
    afresh = sample(model, step, draws=40, tune=0, chains=1, cores=1, random_seed=4)
    assert len(evaluated) == 1 + 40
    monkeypatch.setattr(L2HMC, "_start", fresh_start)
    assert 0 < int(carried.sample_stats["accepted"].sum()) < 40  # both branches of the carry were taken
    for name in ("mu", "tau", "theta"):
        np.testing.assert_allclose(carried.posterior[name].values, afresh.posterior[name].values, rtol=1e-10)
    for name in ("accept", "energy", "lp"):
        np.testing.assert_allclose(carried.sample_stats[name].values, afresh.sample_stats[name].values,
                                   rtol=1e-10)


def test_a_compound_step_evaluates_u_afresh_after_the_other_steps_move():
    """In a compound step the energy depends on the other steps' variables, so U and dU/dy are
    not carried over: the lp the step reports is the model's log density at every draw (the
    other step moves first), rejected draws included."""
    y = np.array([1.0, 0.9, 1.1])  # z = 0 with mu near 1 or z = 1 with mu near -1: z flips often
    with pm.Model() as model:
        z = pm.Bernoulli("z", 0.5)
        mu = pm.Normal("mu", 0.0, 1.0)
        pm.Normal("y", mu + 2.0 * z, 1.0, observed=y)
        sampler = L2HMCSampler(ModelEnergy(model, vars=[mu]), n_steps=3, step_size=0.9, seed=0)
        step = [pm.BinaryGibbsMetropolis(vars=[z]), L2HMC(vars=[mu], sampler=sampler)]
        trace = pm.sample(60, tune=0, chains=1, cores=1, step=step, random_seed=1, return_inferencedata=False,
                          progressbar=False, compute_convergence_checks=False)
    logp = model.logp
    expected = np.array([logp(point) for point in trace.points()])
    accepted = trace.get_sampler_stats("accepted")
    assert 0 < accepted.sum() < 60 and len(set(trace["z"])) == 2
    np.testing.assert_allclose(trace.get_sampler_stats("model_logp"), expected, rtol=1e-10)


def test_a_posterior_too_slow_for_the_draws_gets_a_warning_naming_the_figure():
    """A 2-d Gaussian with correlation 0.9995 under a diagonal preconditioner mixes far too slowly for
    500 draws: the step says so, with warm-up's predicted ESS per draw, and the run's measured min ESS
    (bulk and tail) is indeed below 100.  With the default preconditioner (which corrects that direction) the same
    draws suffice and nothing is said.  (One transition a draw: thin="auto" would make up for the
    diagonal preconditioner with ten.)"""
    from l2hmc_theano.budget import predicted_ess_per_draw

    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(2), cov=np.array([[1.0, 0.9995], [0.9995, 1.0]]), shape=2)
    kinds = pm.backends.report.WarningType
    for preconditioner, slow in (("diag", True), ("auto", False)):
        with model:
            step = L2HMC(preconditioner=preconditioner, train_networks=False, seed=0, cache=False,
                         progressbar=False, thin=1)
        idata = sample(model, step, draws=500, tune=0, chains=1, cores=1, random_seed=3)
        per_draw = predicted_ess_per_draw(step.sampler, step.thin)
        messages = [w.message for w in step.warnings() if w.kind == kinds.CONVERGENCE]
        measured = min(float(az.ess(idata, method=method)["x"].min()) for method in ("bulk", "tail"))
        if slow:
            assert len(messages) == 1 and f"predicts {per_draw:.3g} ESS per draw" in messages[0], messages
            assert f"{int(np.ceil(100 / per_draw))} draws would reach it" in messages[0]
            assert measured < 100 and 500 * per_draw < 100, (measured, per_draw)
        else:
            assert messages == [] and measured > 100 and 500 * per_draw >= 100, (measured, per_draw)


def test_a_draw_of_thin_transitions_is_that_many_single_transitions():
    """L2HMC(thin=3)'s draw from a point is three draws of L2HMC(thin=1) from it, given the same
    random numbers (same sampler, after tuning); its tree_size counts the three transitions'
    gradients and its acceptance is their mean."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=3)
        sampler = L2HMC(train_networks=False, seed=0, cache=False, progressbar=False, thin=1).sampler
        one, three = L2HMC(sampler=sampler, thin=1), L2HMC(sampler=sampler, thin=3)
    for step in (one, three):
        step.tune, step._fresh_chain = False, False
    q0 = np.array([0.3, -1.2, 0.8])
    np.random.seed(5)
    q, accepts = q0, []
    for _ in range(3):
        q, stats = one.astep(q)
        accepts.append(stats[0]["accept"])
    np.random.seed(5)
    q3, stats3 = three.astep(q0)
    np.testing.assert_allclose(q3, q, rtol=1e-12)
    assert stats3[0]["tree_size"] == 3 * sampler.n_steps
    assert stats3[0]["accept"] == pytest.approx(np.mean(accepts))
    assert stats3[0]["model_logp"] == pytest.approx(stats[0]["model_logp"])
    with model, pytest.raises(ValueError, match="thin must be"):
        L2HMC(sampler=sampler, thin=0)


def test_thin_auto_aims_at_the_draw_ess_from_warm_ups_prediction(capsys):
    """thin="auto" makes one transition a draw on an easy Gaussian, and on a strongly correlated
    one under a diagonal preconditioner, predicted under 0.15 min ESS per transition, ceil(0.3 / p)
    (at most 10); warm-up's final window measured that each more keeps most of the ESS per gradient
    there, its chains being positively correlated."""
    from l2hmc_theano.budget import DRAW_ESS, MAX_THIN, THIN_KEEPS, predicted_ess_per_draw

    with pm.Model():
        pm.MvNormal("x", mu=np.zeros(2), cov=np.array([[1.0, 0.999], [0.999, 1.0]]), shape=2)
        slow = L2HMC(preconditioner="diag", train_networks=False, seed=0, cache=False)
    with pm.Model():
        pm.Normal("x", 0.0, 1.0, shape=2)
        easy = L2HMC(train_networks=False, seed=0, cache=False, progressbar=False)
    assert easy.thin == 1 and predicted_ess_per_draw(easy.sampler) >= DRAW_ESS
    one = predicted_ess_per_draw(slow.sampler)
    per_draw = [predicted_ess_per_draw(slow.sampler, k) for k in range(1, MAX_THIN + 1)]
    assert one < DRAW_ESS / 2 and slow.thin == min(MAX_THIN, int(np.ceil(DRAW_ESS / one))) > 1
    assert all(per_draw[k - 1] / k >= THIN_KEEPS * one for k in range(1, slow.thin + 1))
    assert f"L2HMC: {slow.thin} transitions per draw of pm.sample" in capsys.readouterr().err  # said, with a progress bar


def test_thin_auto_thins_positively_correlated_chains_only():
    """Below 0.3 predicted min ESS per transition p, ceil(0.3 / p) transitions a draw where warm-up's
    final window measured its chains kept every second at nearly twice the ESS per draw (an AR(1)
    with rho = 0.7; or a slow chain whose measured gains at larger k are noisy), one where it did
    not (antithetic chains, as a short trajectory gives, however low p); without the measurement
    (a file of before, or trained networks, whose own figure is per transition) only below 0.15."""
    from types import SimpleNamespace

    from l2hmc_theano.budget import DRAW_ESS, MAX_THIN, choose_thin, predicted_ess_per_draw

    def sampler(measured, one=None, table=True, kept=None):
        one = measured[0] if one is None else one
        info = {"ess_per_gradient": [one / 4] * 4, "n_steps": 4, "ess_calibration": 1.0,
                "measured_ess_per_draw_by_thin": measured if table else None}
        selection = {"kept": kept, "trained": 100 * one, "draws": 10, "chains": 10} if kept else None
        return SimpleNamespace(warmup_info=info, n_steps=4, selection=selection)

    ar1 = [(1 - 0.7 ** k) / (1 + 0.7 ** k) for k in range(1, MAX_THIN + 1)]  # 0.176, 0.342, ...
    slow, antithetic = sampler(ar1), sampler([0.25, 0.3, 0.45] + [0.5] * 7)
    assert predicted_ess_per_draw(slow, 3) == pytest.approx(ar1[2])
    assert choose_thin(slow) == 2 and predicted_ess_per_draw(slow, 2) >= DRAW_ESS
    assert choose_thin(antithetic) == 1 and choose_thin(sampler([0.25, 0.3, 0.45] + [0.5] * 7, one=0.05)) == 1
    for old in (sampler(ar1, table=False), sampler(ar1, kept="trained")):
        assert choose_thin(old) == 1
        assert predicted_ess_per_draw(old, 3) == pytest.approx(3 * ar1[0])
    for noisy in ([0.05, 0.095, 0.11] + [0.12] * 7, None):  # slow: gains beyond k = 2 are not asked
        very_slow = sampler(noisy, one=0.05) if noisy else sampler(ar1, one=0.05, kept="trained")
        assert choose_thin(very_slow) == 6


def test_thin_auto_is_one_in_a_compound_step():
    """Beside another step, whose variables would wait for every transition, a draw is one
    transition, though warm-up's prediction alone would ask for more."""
    from l2hmc_theano.budget import choose_thin

    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(2), cov=np.array([[1.0, 0.999], [0.999, 1.0]]), shape=2)
        pm.Bernoulli("z", 0.3)
        step = L2HMC(vars=[model["x"]], preconditioner="diag", train_networks=False, seed=0, cache=False,
                     progressbar=False)
    assert step.thin == 1 < choose_thin(step.sampler)


def test_a_misspelt_argument_is_named_before_anything_compiles_or_trains():
    """L2HMC, l2hmc_theano.sample and l2hmc_theano.train split their keywords the same way
    (:func:`l2hmc_theano.fit.split_arguments`): one that is neither the sampler's nor training's is a
    TypeError naming it, before any warm-up."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=2)
    with model, pytest.raises(TypeError, match=r"L2HMC got unknown keyword argument\(s\): tran_steps"):
        L2HMC(tran_steps=10, cache=False)
    with pytest.raises(TypeError, match=r"train\(\) got unknown keyword argument\(s\): tran_steps"):
        l2hmc_theano.sample(model=model, tran_steps=10, cache=False)
    with pytest.raises(TypeError, match=r"train\(\) got unknown keyword argument\(s\): tran_steps"):
        l2hmc_theano.train(model, tran_steps=10, cache=False)
