"""``l2hmc_theano.sample``: the whole batch of chains as one ``arviz.InferenceData``.

One compiled call moves every chain (``L2HMCSampler.mh_step_carrying``: each chain carries
its energy and gradient from step to step, so a step evaluates them T times); the draws
are then mapped, for all chains and draws at once, to the model's variables: the
sampling coordinates to the model's flat vector (:meth:`ModelEnergy.to_model`), and
that to every free variable in its own shape and constrained space and every
Deterministic (one vectorised Theano function over a ``(rows, dim)`` matrix, in chunks).
The result has ``pm.sample(return_inferencedata=True)``'s groups for the same model:
``posterior`` (with the model's coords and dims), ``sample_stats`` (the L2HMC step's
stats, same names) and ``observed_data``; not ``log_likelihood`` (one value per
observation per draw: pass ``idata`` to ``pm`` tools that need it).
"""
import os
import tempfile
import time
import warnings
import weakref

import arviz as az
import numpy as np

from . import fit
from ._pymc3 import pm
from ._theano import change_flags, compile_fixes, floatX, theano, tt
from .chains import transitions
from .diagnostics import idata_nested_rhat
from .pymc3_energy import ModelEnergy
from .kernel import TRANSITION_STATS
from .starts import START_JITTER, initial_chains
from .step import AUTO_BUDGET
from .vectorize import vectorize

__all__ = ["sample", "DEFAULT_MAX_MEMORY", "posterior_names", "write_netcdf"]

#: The largest result :func:`sample` builds unless told otherwise (bytes).
DEFAULT_MAX_MEMORY = 2 * 2 ** 30
#: Rows per call of the compiled back-transform.
_CHUNK = 20000
_STATS = (*TRANSITION_STATS, "n_steps", "lp")


def posterior_names(model):
    """The variables ``pm.sample`` puts in ``posterior``: the model's unobserved variables
    without the transformed ones (``tau_log__``), Deterministics included, in its order."""
    return [v.name for v in model.unobserved_RVs if not pm.util.is_transformed_name(v.name)]


def _shapes(model, names):
    """Each posterior variable's shape: its test value's (PyMC3 gives every variable one), else
    computed from the model's test point."""
    shapes = {name: np.shape(model[name].tag.test_value) for name in names
              if getattr(model[name].tag, "test_value", None) is not None}
    missing = [name for name in names if name not in shapes]
    if missing:
        values = model.fastfn([model[name] for name in missing])(model.test_point)
        shapes.update((name, np.shape(value)) for name, value in zip(missing, values))
    return {name: shapes[name] for name in names}


#: Each energy's compiled back-transforms, by the names they give (compiled once per energy).
_BACK_TRANSFORMS = weakref.WeakKeyDictionary()


def _back_transform(energy, names):
    """The compiled function of :func:`_compile_back_transform`, compiled at the first call
    for ``energy`` and ``names``."""
    compiled = _BACK_TRANSFORMS.setdefault(energy, {})
    if tuple(names) not in compiled:
        compiled[tuple(names)] = _compile_back_transform(energy, names)
    return compiled[tuple(names)]


def _compile_back_transform(energy, names):
    """A compiled function: the model's flat vectors ``(rows, dim)`` -> each named variable
    ``(rows, *shape)``."""
    with change_flags(compute_test_value="off"), compile_fixes():
        x = tt.vector("x_model", dtype=floatX)
        outputs = theano.clone([energy.model[name] for name in names], energy.model_replacements(x), strict=False)
        X = tt.matrix("X_model", dtype=floatX)
        batched = vectorize([tt.as_tensor_variable(o).astype(floatX) for o in outputs], x, X)
        return theano.function([X], batched, name="posterior_values")


def _resolve_sampler(model, sampler, random_seed, progressbar, train_kwargs, cache=True):
    if sampler is None:
        seed = train_kwargs.pop("seed", random_seed)
        return fit.train(model, seed=seed, progressbar=progressbar, cache=cache, **{**AUTO_BUDGET, **train_kwargs})
    sampler = fit.given_sampler(sampler, model, train_kwargs, "sample()")
    if getattr(sampler.energy_target, "model", None) is not model:
        sampler = sampler.retarget(ModelEnergy(model))
    return sampler


def _check_memory(n_rows, per_row, max_memory, draws, chains, thin):
    needed = n_rows * per_row * 8
    if needed > max_memory:
        raise ValueError(
            f"sample(): {draws} draws x {chains} chains would hold {needed / 2 ** 30:.2f} GiB of results, above "
            f"max_memory = {max_memory / 2 ** 30:.2f} GiB. Ask for fewer chains or draws, keep every k-th draw "
            "(thin=k), or raise max_memory (bytes) if the machine has the room.")


def _starts(sampler, chains, rng, superchains=None):
    """(x0 in the sampling coordinates, continued): the training chains when there are as
    many, else a draw from them (with replacement when they are fewer), else warm-up's
    jittered initial points.  With ``superchains`` K, K starts, each shared by a
    consecutive group of chains / K chains (nested R-hat's design)."""
    n_starts = chains if superchains is None else superchains
    trained = (sampler.history or {}).get("chains")
    if trained is not None and len(trained) == n_starts and superchains is None:
        return np.array(trained, dtype=floatX), True
    if trained is not None and len(trained) > 0:
        pick = rng.choice(len(trained), size=n_starts, replace=len(trained) < n_starts)
        x0 = np.array(trained, dtype=floatX)[pick]
    else:
        x0 = initial_chains(sampler, n_starts, rng, START_JITTER)
    return np.repeat(x0, chains // n_starts, axis=0), False


def sample(draws=1000, chains=200, tune=None, model=None, sampler=None, random_seed=None, progressbar=True,
           thin=1, max_memory=DEFAULT_MAX_MEMORY, superchains=None, compute_convergence_checks=True, cache=True,
           **train_kwargs):
    """Sample every chain of a trained L2HMC sampler at once; returns ``arviz.InferenceData``.

    Parameters
    ----------
    draws : kept draws per chain (after ``thin``).
    chains : number of chains, all moved by one compiled call per MH step.
    tune : MH steps per chain before the kept draws (default: 0 when the chains continue
        the sampler's training chains, which sit in the posterior already and number
        ``chains``; 100 when they are drawn from them; 500 from the model's initial point).
    model : pymc3.Model (default: the one on the context stack).
    sampler : a trained :class:`L2HMCSampler`, the path of a saved one, or None: then one is
        trained first with the defaults of ``pm.sample(step=L2HMC())`` (``**train_kwargs``
        as for :func:`l2hmc_theano.train`; chains and whether to train the networks follow
        :mod:`l2hmc_theano.budget` unless given).
    random_seed : seeds the starts, momenta, directions and acceptance draws (and the
        training, when there is one).
    thin : keep every ``thin``-th draw.
    max_memory : bytes the result may take (the draws, their model values and stats);
        a larger request is refused before any sampling.
    superchains : K >= 2 dividing ``chains``: start K consecutive groups of chains / K chains,
        each group from one point, and check nested R-hat over them
        (:func:`l2hmc_theano.diagnostics.idata_nested_rhat`; Margossian et al.), the
        convergence check made for many short chains.  Default: every chain from its own
        start, no nested R-hat.
    compute_convergence_checks : as in ``pm.sample``: compute rank R-hat (and, with
        ``superchains``, nested R-hat) and warn when it is above 1.01.  Ranking every draw
        of every variable is not free: about as long as drawing them on a model like radon.
    cache : with ``sampler=None``: load the sampler trained on this model with these arguments
        last time, if any, and cache a newly trained one (default True; :mod:`l2hmc_theano.cache`).

    Ctrl-C stops sampling and returns the draws made so far (with a warning).  Warnings
    as ``pm.sample`` gives them: divergences, mean acceptance below 0.1, max rank R-hat
    above 1.01; chains that never moved; with ``superchains``, max nested R-hat above 1.01.  ``idata.posterior``
    holds one chain per L2HMC chain.
    """
    model = pm.modelcontext(model)
    draws, chains, thin = int(draws), int(chains), int(thin)
    if draws < 1 or chains < 1 or thin < 1:
        raise ValueError(f"draws, chains and thin must be >= 1, got {draws}, {chains} and {thin}.")
    discrete = [v.name for v in model.free_RVs if v.dtype not in pm.theanof.continuous_types]
    if discrete:
        raise ValueError(f"l2hmc_theano.sample() moves continuous variables only, but the model has discrete "
                         f"variable(s) {', '.join(map(repr, discrete))}: use pm.sample with a compound step "
                         "(step=[l2hmc_theano.L2HMC(vars=[...]), pm.BinaryGibbsMetropolis(vars=[...])]).")
    if superchains is not None:
        superchains = int(superchains)
        if superchains < 2 or chains % superchains:
            raise ValueError(f"superchains must be an integer >= 2 that divides chains ({chains}), got "
                             f"{superchains}; e.g. superchains={max(2, chains // 50)} with chains="
                             f"{max(2, chains // 50) * 50}.")
    names = posterior_names(model)
    shapes = _shapes(model, names)
    # Per draw and chain: the model's values, the stats and (while sampling) the flat draw.
    per_row = sum(int(np.prod(s)) for s in shapes.values()) + len(_STATS) + 1 + \
        sum(int(np.size(v)) for v in model.test_point.values())
    _check_memory(draws * chains, per_row, max_memory, draws, chains, thin)

    sampler = _resolve_sampler(model, sampler, random_seed, progressbar, dict(train_kwargs), cache)
    energy = sampler.energy_target
    missing = [v.name for v in model.free_RVs if v not in energy.vars]
    if missing:
        raise ValueError(f"l2hmc_theano.sample() needs a sampler of every free variable, but this one leaves out "
                         f"{', '.join(map(repr, missing))}: train it on the whole model.")
    rng = np.random.default_rng(np.random.SeedSequence(random_seed).spawn(2)[1] if random_seed is not None
                                else None)
    x, continued = _starts(sampler, chains, rng, superchains)
    if tune is None:
        tune = 0 if continued else (100 if (sampler.history or {}).get("chains") is not None else 500)
    tune = int(tune)
    dim = sampler.dim
    kept_u = np.empty((draws, chains, dim), dtype=floatX)
    stats = {k: np.empty((draws, chains), dtype=d) for k, d in {**TRANSITION_STATS, "potential": np.float64}.items()}
    total = tune + draws * thin
    steps = range(total)
    if progressbar:
        from fastprogress.fastprogress import progress_bar

        steps = progress_bar(steps)
    kept, start = 0, time.perf_counter()
    networks = not sampler.networks_are_zero()  # once for the run: the step it compiles (or has)
    moves = transitions(sampler, x, rng, networks)
    try:
        for i in steps:
            step, d, scale = next(moves)
            if i >= tune and (i - tune) % thin == 0:
                kept_u[kept] = step.x
                for key, value in (("accept", step.accept_prob), ("accepted", step.accepted),
                                   ("diverging", step.diverging), ("energy", step.energy),
                                   ("energy_error", step.energy_error), ("step_size", sampler.step_size * scale),
                                   ("log_jacobian", step.logdet), ("direction", d), ("potential", step.potential)):
                    stats[key][kept] = value
                kept += 1
    except KeyboardInterrupt:
        if kept == 0:
            raise
        warnings.warn(f"l2hmc_theano.sample() interrupted: returning the {kept} of {draws} draws made so far.")
    seconds = time.perf_counter() - start

    idata = _to_inferencedata(model, energy, names, kept_u[:kept], {k: v[:kept] for k, v in stats.items()},
                              sampler.n_steps, tune, seconds)
    _warn(idata, az, superchains, compute_convergence_checks)
    return idata


def _to_inferencedata(model, energy, names, kept_u, stats, n_steps, tune, seconds):
    n_draws, chains, dim = kept_u.shape
    rows = kept_u.transpose(1, 0, 2).reshape(-1, dim)  # chain-major rows: (chain, draw)
    values = {name: [] for name in names}
    log_jacobian = []
    back = _back_transform(energy, names)
    for lo in range(0, len(rows), _CHUNK):
        x_model, jac = energy.to_model_with_jacobian(rows[lo:lo + _CHUNK])
        log_jacobian.append(jac)
        for name, value in zip(names, back(x_model)):
            values[name].append(value)
    posterior = {name: np.concatenate(parts).reshape((chains, n_draws) + parts[0].shape[1:])
                 for name, parts in values.items()}
    log_jacobian = np.concatenate(log_jacobian).reshape(chains, n_draws)
    sample_stats = {k: np.swapaxes(v, 0, 1) for k, v in stats.items() if k != "potential"}
    sample_stats["n_steps"] = np.full((chains, n_draws), float(n_steps))
    # U(u) = -log p(x) - log|dx/du|: the model's log density at each draw.
    sample_stats["lp"] = -np.swapaxes(stats["potential"], 0, 1) - log_jacobian
    observed = {}
    for obs in model.observed_RVs:
        data = getattr(obs, "observations", None)
        if data is not None:
            observed[obs.name] = np.asarray(data.get_value() if hasattr(data, "get_value") else data)
    coords = {k: np.asarray(v) for k, v in (model.coords or {}).items() if v is not None}
    dims = {k: list(v) for k, v in (getattr(model, "RV_dims", None) or {}).items() if v}
    attrs = {"inference_library": "l2hmc_theano", "sampling_time": seconds, "tuning_steps": tune}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="More chains")  # many short chains are the point here
        idata = az.from_dict(posterior=posterior, sample_stats=sample_stats, observed_data=observed or None,
                             coords=coords, dims=dims)
    for group in (idata.posterior, idata.sample_stats):
        group.attrs.update(attrs)
    return idata


def _warn(idata, az, superchains=None, convergence=True):
    stats = idata.sample_stats
    n_div = int(stats["diverging"].sum())
    if n_div:
        warnings.warn(f"l2hmc_theano.sample(): {n_div} divergent proposals in {stats['diverging'].size} draws.")
    stuck = int(np.sum(~stats["accepted"].values.any(axis=1)))
    if stuck:
        warnings.warn(f"l2hmc_theano.sample(): {stuck} of {stats.sizes['chain']} chains never moved (every proposal "
                      "rejected): they sit where the sampler cannot move, e.g. a far tail a training chain reached. "
                      "Their draws are a single point; drop them (idata.sel(chain=...)) or retrain.")
    mean_accept = float(stats["accept"].mean())
    if mean_accept < 0.1:
        warnings.warn(f"l2hmc_theano.sample(): mean acceptance probability {mean_accept:.3f} (< 0.1): the chains "
                      "hardly move. Retrain with a smaller step_size, or use NUTS.")
    if convergence and idata.posterior.sizes["draw"] >= 4:
        rhat = az.rhat(idata)
        worst = max(float(np.nanmax(rhat[k].values)) for k in rhat.data_vars)
        if worst > 1.01:
            warnings.warn(f"l2hmc_theano.sample(): the largest rank R-hat is {worst:.3f} (> 1.01): the chains "
                          "have not mixed; sample longer (more draws) or retrain.")
    if convergence and superchains is not None and idata.posterior.sizes["draw"] >= 2:
        nested = idata_nested_rhat(idata, superchains)
        name, worst = max(((k, float(np.nanmax(v))) for k, v in nested.items()), key=lambda kv: kv[1])
        if worst > 1.01:
            warnings.warn(f"l2hmc_theano.sample(): nested R-hat over {superchains} superchains is {worst:.3f} for "
                          f"{name!r} (> 1.01): the chains still remember their starts; run longer (tune or "
                          "draws) or retrain.")


def write_netcdf(idata, path):
    """Write ``idata`` to the NetCDF file ``path`` whole or not at all (a temporary file in
    the same folder, renamed into place)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".l2hmc-", suffix=".nc.tmp")
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
