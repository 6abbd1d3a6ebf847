"""Centred hierarchies that are not Normal-Normal, with every default: L2HMC against PyMC3's NUTS,
checked against a long run of the same posterior written well (non-centred by hand).

    python benchmarks/hierarchies.py --seeds 0 1 2 --out docs/hierarchies.md
    python benchmarks/hierarchies.py --models varying_slopes --seeds 0

Models (``benchmarks/models.py``), each written centred, as a user would:
* ``student_t_schools``: eight schools with Student-t (nu = 4) effects under a free scale;
* ``stochastic_volatility``: a Gaussian random walk of 100 log-volatilities under a free step scale;
* ``varying_slopes``: 20 groups' (intercept, slope) ~ MvNormal(mu, L L^T), L from an LKJ prior.

For each seed, pm.sample(1000, chains=2, cores=1, random_seed=seed) with L2HMC
(``step=l2hmc_theano.L2HMC(seed=seed, cache=False)``, tune 100) and with NUTS (``pm.init_nuts``,
tune 1000), as ``benchmarks/posteriordb.py`` runs them.  The reference is NUTS on the non-centred
equivalent (4 chains x 5000 draws, tune 2000, target_accept 0.95, seed 1000).

Columns: "worst z" = max over the model's free variables' scalars (model space) of |mean - reference
mean| / sqrt(MCSE^2 + reference MCSE^2), and the same for the standard deviations ("worst z (sd)",
ArviZ's MCSE of the sd); max rank R-hat; min bulk ESS per 1000 gradients; min tail ESS (of the 5%
and 95% quantiles) per 1000 gradients; seconds to 1000 min bulk ESS with setup; divergences.  A
cell is the median [min, max] over seeds.
"""
import argparse
import datetime
import os
import sys
import warnings

import numpy as np

import l2hmc_theano  # noqa: F401  (first: it sets Theano's flags before pymc3)

import arviz as az  # noqa: E402
import pymc3 as pm  # noqa: E402
from models import stochastic_volatility, student_t_schools, varying_slopes  # noqa: E402
from posteriordb import RUNS  # noqa: E402
from time_to_result import free_names, machine, phase, say  # noqa: E402
from _harness import chosen_samplers, command, git_commit, median_cell, publish  # noqa: E402

MODELS = {"student_t_schools": student_t_schools, "stochastic_volatility": stochastic_volatility,
          "varying_slopes": varying_slopes}
REFERENCE = {"draws": 5000, "tune": 2000, "chains": 4, "target_accept": 0.95, "random_seed": 1000}


def reference(name):
    """The long run's ``{variable: (mean, mean MCSE, sd, sd MCSE)}`` over the centred model's free
    variables (model space), and its max R-hat."""
    centred = MODELS[name]()
    names = free_names(centred)
    with MODELS[name](centred=False), warnings.catch_warnings(), phase(f"{name}: reference run"):
        warnings.simplefilter("ignore")
        idata = pm.sample(**REFERENCE, cores=1, progressbar=False, return_inferencedata=True,
                          compute_convergence_checks=False)
    posterior = idata.posterior[names]
    stats = {v: (posterior[v].mean(("chain", "draw")).values, az.mcse(posterior[[v]])[v].values,
                 posterior[v].std(("chain", "draw")).values, az.mcse(posterior[[v]], method="sd")[v].values)
             for v in names}
    return stats, float(az.rhat(posterior).to_array().max())


def worst_z(idata, names, ref):
    """``(worst z of the means, worst z of the sds)`` of ``idata`` against ``ref`` (see the docstring)."""
    z_mean, z_sd = 0.0, 0.0
    for v in names:
        draws = idata.posterior[v]
        mean, mcse = draws.mean(("chain", "draw")).values, az.mcse(idata.posterior[[v]])[v].values
        sd, mcse_sd = draws.std(("chain", "draw")).values, az.mcse(idata.posterior[[v]], method="sd")[v].values
        ref_mean, ref_mcse, ref_sd, ref_mcse_sd = ref[v]
        z_mean = max(z_mean, float(np.max(np.abs(mean - ref_mean) / np.hypot(mcse, ref_mcse))))
        z_sd = max(z_sd, float(np.max(np.abs(sd - ref_sd) / np.hypot(mcse_sd, ref_mcse_sd))))
    return z_mean, z_sd


def run(name, sampler, seed, draws, ref):
    model = MODELS[name]()
    with phase(f"{name} {sampler} seed {seed}"):
        idata, row, note = RUNS[sampler](model, seed, draws)
    row["z_mean"], row["z_sd"] = worst_z(idata, free_names(model), ref)
    row["note"] = note
    say(f"{name} {sampler} seed {seed}: worst z {row['z_mean']:.2f} (sd {row['z_sd']:.2f}), R-hat "
        f"{row['max_rhat']:.3f}, {row['ess_per_kgrad']:.3g} ESS per 1k gradients, {row['s_to_target']:.3g} s to "
        f"1000 ESS, {row['divergences']} divergences; {note}")
    return row


def table(results, references):
    lines = ["| model | sampler | worst z (mean) | worst z (sd) | max R-hat | ESS per 1k gradients | tail ESS per 1k "
             "gradients | s to 1000 ESS | divergences | notes |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, by_sampler in results.items():
        for sampler, rows in by_sampler.items():
            notes = "; ".join(sorted({r["note"] for r in rows if r.get("note")}))
            cells = [median_cell(rows, key, fmt) for key, fmt in (("z_mean", ".2f"), ("z_sd", ".2f"), ("max_rhat", ".3f"),
                                                                   ("ess_per_kgrad", ".3g"), ("tail_per_kgrad", ".3g"),
                                                                   ("s_to_target", ".3g"), ("divergences", ".0f"))]
            lines.append(f"| {name} | {sampler} | " + " | ".join(cells) + f" | {notes} |")
        lines.append(f"| {name} | reference | | | {references[name]:.3f} | | | | | non-centred NUTS, "
                     f"{REFERENCE['chains']} x {REFERENCE['draws']} |")
    return lines


def summary(results):
    lines = []
    for name, by_sampler in results.items():
        ours, nuts = by_sampler.get("l2hmc", []), by_sampler.get("nuts", [])
        if not (ours and nuts):
            continue
        ratio = np.median([r["ess_per_kgrad"] for r in ours]) / np.median([r["ess_per_kgrad"] for r in nuts])
        tail = np.median([r["tail_per_kgrad"] for r in ours]) / np.median([r["tail_per_kgrad"] for r in nuts])
        lines.append(f"- {name}: L2HMC / NUTS min ESS per gradient {ratio:.2f}x, min tail ESS {tail:.2f}x (medians); "
                     f"divergences "
                     f"{sum(r['divergences'] for r in ours)} against {sum(r['divergences'] for r in nuts)}; max "
                     f"R-hat {max(r['max_rhat'] for r in ours):.3f} against {max(r['max_rhat'] for r in nuts):.3f}; "
                     f"worst z {max(max(r['z_mean'], r['z_sd']) for r in ours):.2f} against "
                     f"{max(max(r['z_mean'], r['z_sd']) for r in nuts):.2f}.")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="NAME",
                        help=f"default: all ({', '.join(MODELS)})")
    parser.add_argument("--samplers", default="l2hmc,nuts", help="comma-separated: l2hmc, nuts (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain, 2 chains (default: %(default)s)")
    parser.add_argument("--out", default=None, help="write the results (markdown) here, e.g. docs/hierarchies.md")
    args = parser.parse_args(argv)
    samplers = chosen_samplers(parser, args.samplers, RUNS)
    load_avg = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    results, references = {}, {}
    for name in args.models:
        ref, references[name] = reference(name)
        results[name] = {s: [run(name, s, seed, args.draws, ref) for seed in args.seeds] for s in samplers}
    lines = ["# Centred hierarchies that are not Normal: L2HMC (every default) against PyMC3's NUTS", "",
             f"- command: `{command('benchmarks/hierarchies.py', sys.argv[1:])}`",
             f"- date: {started:%Y-%m-%d %H:%M} UTC; seeds {', '.join(map(str, args.seeds))}; 2 chains x "
             f"{args.draws} draws; reference: {REFERENCE}",
             f"- git commit: {git_commit()}", f"- machine: {machine(load_avg)}", "",
             *summary(results), "", *table(results, references), "",
             "Columns: see the docstring of benchmarks/hierarchies.py."]
    publish("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
