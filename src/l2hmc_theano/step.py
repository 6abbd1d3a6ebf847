"""``L2HMC``: the learned sampler as a PyMC3 step method.

    with model:
        idata = pm.sample(step=l2hmc_theano.L2HMC(), return_inferencedata=True)

Each ``astep`` makes ``thin`` Metropolis-Hastings steps with the learned dynamics on the
flat vector of the step's variables (by default, where one is predicted under 0.3 min ESS, as
many as the slowest parameter needs for 0.3 ESS per draw, unless warm-up measured that two
lose ESS per gradient: :func:`.budget.choose_thin`), each with a
fresh momentum v ~ N(0, I) and direction d from NumPy's global generator (which
``pm.sample(random_seed=...)`` seeds, per chain and per worker).  Other free variables of the
model (in a compound step) enter as shared values, as in PyMC3's own step methods.

Nothing adapts during ``pm.sample``'s tuning draws: the sampler arrives tuned.  A chain's
first tuning step starts from one of the sampler's training chains (drawn with the same
seeded generator), which sit in the posterior already, rather than from the model's
initial point (a step size adapted to the posterior can be far too large out there).
When the step moves every free variable of the model, that start is all tuning has to
do, so the chain's later tuning draws are free: the chain stays where it is, with no
proposal (``accept`` NaN, ``tree_size`` 0 in the discarded tuning stats).  In a compound
step the other steps' variables move during tuning, so its tuning draws are real steps.
"""
import sys

import numpy as np

from ._pymc3 import ArrayStepShared, Competence, SamplerWarning, WarningType, pm
from ._theano import floatX
from .budget import DRAW_ESS, MAX_THIN, choose_thin, predicted_ess_per_draw  # noqa: F401 (re-exported)
from .cache import trained_sampler
from .chain_guard import FAILURES
from .diagnostics import acceptance_by_region
from .pymc3_energy import ModelEnergy
from .fit import given_sampler, split_arguments
from .kernel import TRANSITION_STATS, Step

__all__ = ["L2HMC"]

#: Setup in proportion to what it buys (:mod:`l2hmc_theano.budget`), unless the caller says otherwise.
AUTO_BUDGET = {"batch_size": "auto", "train_networks": "auto"}


class L2HMC(ArrayStepShared):
    """PyMC3 step method with L2HMC's learned generalized leapfrog.

    Parameters
    ----------
    vars : list of continuous free variables (default: all continuous ones).
    model : pymc3.Model (default: the one on the context stack).
    sampler : L2HMCSampler, path of a saved one, or None
        None warms up and trains a sampler on the model first (``**train_kwargs``: constructor
        arguments ``n_steps, step_size, hidden, seed, zero_network, preconditioner`` and
        :meth:`L2HMCSampler.train` arguments, e.g. ``train_steps``).  By default the number of
        chains follows the cost of a gradient and the networks are trained only where that is
        predicted to pay for itself (``batch_size="auto"``, ``train_networks="auto"``:
        :mod:`l2hmc_theano.budget`); ``train_networks=True`` always trains.
    noncentre : bool
        Sample hierarchical groups whose scale depends on other variables (location-scale
        families, random walks, AR(1) series, MvNormal rows under a free Cholesky factor: funnels,
        centred hierarchies) non-centred where the prior dominates (default True; :mod:`l2hmc_theano.reparam`).
        The draws are the model's own values either way.  A given ``sampler`` keeps its own.
    cache : bool
        With ``sampler=None``: load the sampler trained on this model with these arguments
        last time, if any, and cache a newly trained one (default True; :mod:`l2hmc_theano.cache`).
    thin : "auto" or int >= 1
        MH transitions per draw of ``pm.sample``.  ``"auto"`` (default): where a transition is
        predicted under :data:`DRAW_ESS` min ESS (:func:`l2hmc_theano.budget.predicted_ess_per_draw`),
        enough for the slowest parameter's ESS per draw to reach it (at most :data:`MAX_THIN`;
        one where warm-up measured that two transitions a draw lose ESS per gradient, as
        antithetic chains do: :func:`l2hmc_theano.budget.choose_thin`),
        so that ``pm.sample``'s draws give a usable posterior at its usual number of draws, as
        NUTS's longer trees do; one in a compound step (the other steps' variables would wait).  The stats count every
        transition's gradients (``tree_size``).
    """

    name = "l2hmc"
    default_blocked = True
    generates_stats = True
    stats_dtypes = [{**TRANSITION_STATS, "tree_size": np.float64, "model_logp": np.float64, "tune": bool}]

    def __init__(self, vars=None, model=None, sampler=None, cache=True, thin="auto", **train_kwargs):
        if not (thin == "auto" or (isinstance(thin, (int, np.integer)) and not isinstance(thin, bool) and thin >= 1)):
            raise ValueError(f"thin must be 'auto' or an integer >= 1 (MH transitions per draw), got {thin!r}.")
        model = pm.modelcontext(model)
        talk = train_kwargs.get("progressbar", True)
        if vars is None:
            vars = model.cont_vars
        # The flat vector follows model.free_RVs, as a sampler trained on the whole model does.
        chosen = set(pm.inputvars(vars))
        vars = [v for v in model.free_RVs if v in chosen]
        shared = pm.make_shared_replacements(vars, model)
        energy = ModelEnergy(model, vars=vars, shared=shared, noncentre=train_kwargs.pop("noncentre", True))

        if sampler is None:
            init, training = split_arguments(train_kwargs, "L2HMC")
            sampler = trained_sampler(energy, init, {**AUTO_BUDGET, **training}, cache=cache)
        else:
            given = given_sampler(sampler, energy, train_kwargs, "L2HMC")
            sampler = given if given is not sampler else sampler.retarget(energy)  # a loaded one is energy's
        self.sampler = sampler
        # In a compound step the other steps' variables wait for every transition: one a draw.
        self.thin = (choose_thin(sampler) if not shared else 1) if thin == "auto" else int(thin)
        if thin == "auto" and self.thin > 1 and talk:
            print(f"L2HMC: {self.thin} transitions per draw of pm.sample (predicted min ESS per draw "
                  f"{predicted_ess_per_draw(sampler, self.thin):.3g}, with one {predicted_ess_per_draw(sampler):.3g}; "
                  "thin=1 makes one)",
                  file=sys.stderr, flush=True)
        self.reset_tuning()  # tune = True, counters at 0
        super().__init__(vars, shared)
        # Compiled now, and said so, rather than silently at the first draw.
        with sampler.announcing():
            sampler.model_step_function()

    def _warm_start(self, q0):
        """At a chain's first tuning step: a random training chain's position (in the sampling
        coordinates), if there are any; else ``q0``'s.  A warm start with no other step's variables
        makes the chain's remaining tuning draws free."""
        self._fresh_chain = False
        self._last_logp = np.nan
        chains = (self.sampler.history or {}).get("chains")
        if not self.tune or chains is None or len(chains) == 0:
            return self._to_sampling(q0)
        self._tuned_start = not self.shared
        return np.asarray(chains[np.random.randint(len(chains))], dtype=floatX)[None, :]

    def _free_tuning_draw(self, q0):
        """A tuning draw after a warm start: the chain stays at ``q0``, no proposal is made."""
        nan = float("nan")
        stats = {"accept": nan, "accepted": False, "diverging": False, "energy": nan, "energy_error": nan,
                 "step_size": self.sampler.step_size, "log_jacobian": nan, "direction": 0, "tree_size": 0.0,
                 "model_logp": self._last_logp, "tune": True}
        return q0, [stats]

    def _to_sampling(self, q0):
        """The sampling coordinates ``(1, dim)`` of the model's flat vector ``q0``: those of the
        last draw when ``q0`` is it (no map, no round-off), else mapped."""
        last = self._last
        if last is not None and np.array_equal(last[0], q0):
            return last[1]
        return self.sampler.energy_target.to_sampling(np.asarray(q0, dtype=floatX)[None, :])

    def _start(self, q0):
        """Where the draw starts: the sampling coordinates ``(1, dim)``, U ``(1,)`` and dU/dy
        ``(1, dim)``.  U and dU/dy are the last draw's when ``q0`` is it and the energy depends on
        nothing else (no other step's variables: ``self.shared`` is empty), else evaluated."""
        if self._fresh_chain:
            x = self._warm_start(q0)
        else:
            last = self._last
            if last is not None and not self.shared and np.array_equal(last[0], q0):
                return last[1:]
            x = self._to_sampling(q0)
        return (x, *self.sampler.start_state(x))

    def astep(self, q0):
        if self.tune and self._tuned_start and self._last is not None:
            return self._free_tuning_draw(q0)
        if self._mh_step is None:  # once per run: the networks do not change while it draws
            self._mh_step = self.sampler.model_step_function()
        x, potential, grad = self._start(q0)
        accepts, accepted_any, diverged = [], False, False
        for _ in range(self.thin):
            step, direction, step_scale = self._transition(x, potential, grad)
            x, potential, grad = step.x, step.potential, step.grad
            accepts.append(float(step.accept_prob[0]))
            accepted_any |= bool(step.accepted[0])
            diverged |= bool(step.diverging[0])
        q_next = step.model_x[0].astype(q0.dtype)
        self._last = (q_next, x, potential, grad)
        model_logp = -float(potential[0]) - float(step.log_jacobian[0])  # U(u) = -log p(x) - log|dx/du|
        accept = float(np.mean(accepts))
        self._n_draws += 1
        self._n_divergent += int(diverged)
        self._accept_sum += accept
        if not self.tune:  # where each draw started (the previous draw's log density), for warnings()
            self._transitions.append((self._last_logp, accept, diverged))
        self._last_logp = model_logp
        stats = {
            "accept": accept,  # the mean over the draw's transitions
            "accepted": accepted_any,
            "diverging": diverged,
            "energy": float(step.energy[0]),  # the last transition's
            "energy_error": float(step.energy_error[0]),
            "step_size": self.sampler.step_size * float(step_scale[0]),
            "log_jacobian": float(step.logdet[0]),
            "direction": int(direction),
            "tree_size": float(self.sampler.n_steps * self.thin),  # gradients of the draw
            "model_logp": model_logp,
            "tune": self.tune,
        }
        return q_next, [stats]

    def _transition(self, x, potential, grad):
        """One MH transition of the chain at ``x`` ``(1, dim)`` with U ``potential`` and dU/dy ``grad``,
        with a fresh momentum, direction, uniform and step scale from NumPy's global generator:
        ``(step, direction, step_scale)``, ``step`` a :class:`~.kernel.Step` with the model's values."""
        v = np.random.standard_normal((1, self.sampler.dim)).astype(floatX)
        direction = 1.0 if np.random.uniform() < 0.5 else -1.0
        log_u = np.log(np.random.uniform(size=1)).astype(floatX)
        step_scale = self.sampler.draw_step_scale(np.random, 1)
        try:
            out = self._mh_step(x, v, np.array([direction], dtype=floatX), log_u, step_scale, potential, grad)
        except FAILURES:  # this chain's trajectory cannot be evaluated: a divergence, not the run's end
            out = self._stay(x, v, potential, grad)
        return out, direction, step_scale

    def _stay(self, x, v, potential, grad):
        """The step's outputs for a chain at ``x`` ``(1, dim)`` whose proposal raised: it stays,
        rejected and diverging (as :func:`l2hmc_theano.chain_guard.mark_mh_step` marks a batch's)."""
        q, log_jacobian = self.sampler.energy_target.to_model_with_jacobian(x)
        energy = potential + 0.5 * np.sum(np.square(v), axis=1)
        zero, no = np.zeros(1), np.zeros(1, dtype=bool)
        return Step(x, zero, no, ~no, energy, np.full(1, np.inf), zero, potential, grad=grad, model_x=q,
                    log_jacobian=log_jacobian)

    def reset_tuning(self):
        """Nothing is adapted; a new run starts with tuning draws again (and a warm start)."""
        self.tune = True
        self._fresh_chain = True
        self._tuned_start = False  # set by a warm start that leaves tuning nothing to do
        self._n_draws = self._n_divergent = 0
        self._accept_sum = 0.0
        self._last_logp = np.nan
        self._last = None  # the last draw's model flat vector, sampling coordinates (1, dim), U (1,), dU/dy (1, dim)
        self._mh_step = None  # the sampler's per-draw call, resolved at the run's first draw
        self._transitions = []  # (log density at the start, acceptance, diverged) of each draw after tuning

    def warnings(self):
        """Warnings PyMC3 reports after sampling: poor acceptance, divergences, and a region
        (fifth of the draws by log density) where the sampler hardly moves.

        NUTS is recommended only where it would do better: when L2HMC fails everywhere.  When
        the failure sits in one region (a funnel's neck, a centred hierarchy's small scales)
        NUTS diverges there too with any constant step size; the warning says where, and that a
        non-centred parameterization helps both."""
        if not self._n_draws:
            return []
        out = []
        regions = self._regions()
        local = _local_failure(regions)
        mean_accept = self._accept_sum / self._n_draws
        if mean_accept < 0.1:
            out.append(SamplerWarning(
                WarningType.BAD_ACCEPTANCE,
                f"L2HMC's mean acceptance probability is {mean_accept:.3f} (< 0.1): the learned sampler "
                "mixes poorly here. Train longer or with a smaller step_size, or use NUTS.", "warn"))
        elif local is not None and local["accept"] < 0.1:
            out.append(SamplerWarning(
                WarningType.BAD_ACCEPTANCE,
                f"L2HMC's acceptance is {local['accept']:.3f} in {_where(local, regions)} against "
                f"{max(r['accept'] for r in regions):.2f} in the best fifth: the chains hardly move there, so "
                f"that region is under-sampled. {_LOCAL_ADVICE}", "warn"))
        if self._n_divergent > 0.01 * self._n_draws:
            message = f"L2HMC had {self._n_divergent} divergent proposals in {self._n_draws} draws"
            worst = max(regions, key=lambda r: r["diverging"] * r["n"]) if regions else None
            total = sum(r["diverging"] * r["n"] for r in regions)
            if worst is not None and total > 0 and worst["diverging"] * worst["n"] >= 0.6 * total:
                message += (f", {100 * worst['diverging'] * worst['n'] / total:.0f}% of those after draws in "
                            f"{_where(worst, regions)}. {_LOCAL_ADVICE} Reducing step_size and retraining "
                            "reaches further into it.")
            else:
                message += ". Reduce step_size and retrain, or use NUTS."
            out.append(SamplerWarning(WarningType.DIVERGENCES, message, "error"))
        short = self._too_few_draws()
        if short is not None:
            out.append(SamplerWarning(WarningType.CONVERGENCE, short, "warn"))
        return out

    def _too_few_draws(self):
        """A message when the draws after tuning are predicted to give this chain less than
        :data:`MIN_CHAIN_ESS` min ESS (:func:`.budget.predicted_ess_per_draw`), else None."""
        per_draw = predicted_ess_per_draw(self.sampler, self.thin)
        draws = len(self._transitions)
        if per_draw is None or not draws or draws * per_draw >= MIN_CHAIN_ESS:
            return None
        needed = int(np.ceil(MIN_CHAIN_ESS / max(per_draw, 1e-12)))
        return (f"L2HMC's warm-up predicts {per_draw:.3g} ESS per draw for the slowest parameter: this chain's "
                f"{draws} draws give about {draws * per_draw:.3g}, under the {MIN_CHAIN_ESS} per chain a usable "
                f"posterior needs (its R-hat and ESS cannot be trusted). About {needed} draws would reach it; "
                "a posterior this slow to mix may also need another parameterization (or preconditioner='dense' "
                "for strongly correlated parameters).")

    def _regions(self):
        if len(self._transitions) < 50:
            return []
        logp, accept, diverging = (np.array(column) for column in zip(*self._transitions))
        return acceptance_by_region(logp, accept, diverging, n_regions=5)

    @staticmethod
    def competence(var, has_grad):
        """COMPATIBLE for continuous variables, never preferred over NUTS."""
        if var.dtype in pm.theanof.continuous_types:
            return Competence.COMPATIBLE
        return Competence.INCOMPATIBLE


#: The least min ESS per chain that counts as usable (Vehtari et al. 2021 ask 100 per chain).
MIN_CHAIN_ESS = 100
_LOCAL_ADVICE = ("A constant step size cannot follow the posterior's scale there (e.g. a funnel, as in a centred "
                 "hierarchy); NUTS diverges in such regions too, and a non-centred parameterization helps both.")


def _local_failure(regions):
    """The worst fifth when its acceptance is below half the best fifth's (which is >= 0.5), else None."""
    if len(regions) < 5:
        return None
    worst, best = min(regions, key=lambda r: r["accept"]), max(r["accept"] for r in regions)
    return worst if best >= 0.5 and worst["accept"] < 0.5 * best else None


def _where(region, regions):
    """'the fifth of the draws with the lowest log density (log p < -3.2)', or a middle fifth's range."""
    if region is regions[0]:
        return f"the fifth of the draws with the lowest log density (log p < {region['high']:.4g})"
    if region is regions[-1]:
        return f"the fifth of the draws with the highest log density (log p > {region['low']:.4g})"
    return f"the fifth of the draws with log p in [{region['low']:.4g}, {region['high']:.4g}]"
