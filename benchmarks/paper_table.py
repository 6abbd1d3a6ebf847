"""The paper's experiments (Levy et al. 2018, Sec. 5, Table 1 and Figure 1), with baselines.

For each target: train L2HMC (T = 10, 5000 steps, batch 200, Adam 1e-3, loss
scale 0.1; hidden 10/10, 100/100 for the 50-d ICG), then run 200 chains x 2000
MH steps from exact draws of the target and measure

* the paper's ESS per MH step (autocorrelation with the known mean and
  variance, averaged over chains and dimensions, summed until it first falls
  below 0.05; :func:`l2hmc_theano.diagnostics.ess_per_step`),
* the same estimator on each coordinate's own autocorrelation, its minimum
  (the dimension-averaged one reads antithetic moves in some coordinates as
  independence of all),
* ArviZ's ``ess_bulk`` on the same draws, its minimum over coordinates, and the same
  for the squares (x - mean)^2 (antithetic moves x -> ~2 mean - x raise the first, not
  the second),
* ESS per gradient evaluation (T per MH step; NUTS: its ``tree_size``) and ESS
  per second of sampling.

Per-target training settings (``make_targets``): the ICG drops the burn-in batch
(N(0, I) is 10 sd out in its narrow coordinates, and that term's unbounded reward
collapses the chains' acceptance) and measures jumps in each coordinate's units
(``scaled_jump``: with the raw |x' - x|^2 the wide coordinates own the loss, and the
trained sampler swung them antithetically while the narrow ones hardly moved:
min bulk ESS per step 0.00063 against HMC's 0.0024); the mixture anneals from temperature 20; the
rough well trains with ``constant_forces`` (the exact loss gradient explodes
through its rough forces).

"L2HMC preconditioned" is the paper's sampler and training (T = 10, the target's
settings) with warm-up's diagonal preconditioner and step size first; for the mixture,
the burn-in term's fresh batch comes from the Gaussian fitted to the chains
(``fresh_draws="chains"``): from N(0, I) in the preconditioner's coordinates its
training never learned the jump between the modes (0 of 3 seeds), and on the Gaussians
the fitted q trains a reflection through the mean.
"L2HMC defaults" is the library as a user gets it, with none of the settings above:
``L2HMCSampler(energy, hidden=...)`` trained by ``train()`` with its defaults (warm-up of
the step size, a diagonal preconditioner and T; the per-coordinate loss; training stops
once the jump is flat; the better of the trained networks and plain HMC is kept).  Its
gradients are its own T per MH step.

Baselines in the same run, same starts: HMC = our dynamics with zero networks,
T = 10, every step size of the target's grid (the table's "best" has the highest
bulk ESS: the paper's estimator saturates at 1 and reads antithetic chains as
independent); PyMC3's ``HamiltonianMC`` at that step size (identity mass matrix,
T = 10 exactly, no adaptation); PyMC3's NUTS with its default adaptation.  The
PyMC3 samplers run ``--pymc3-chains`` chains of ``--draws`` draws through
``pm.sample`` (cores=1); NUTS's gradients are its post-tuning ``tree_size``.

Writes ``table.md`` (the summary printed at the end), ``details.md`` (every
sampler run) and PNG plots (autocorrelation against gradient evaluations, as
the paper's Figure 1; mixture chains over its density) into ``--out-dir``.
Each target is seeded on its own: a subset reproduces the full run's rows.

    python benchmarks/paper_table.py                       # full protocol, ~1 h on 2 cores
    python benchmarks/paper_table.py --targets scg mog     # a subset
    python benchmarks/paper_table.py --quick               # smoke run
"""
import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import l2hmc_theano  # noqa: F401  (first: sets Theano's flags before pymc3 imports Theano)
from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano import targets
from l2hmc_theano.targets import PAPER_SAMPLER, PAPER_TRAINING
from l2hmc_theano.diagnostics import autocorrelation, ess_per_step
from l2hmc_theano.persistence import atomic_write


@dataclass
class Target:
    """One experiment: the energy, its exact moments and draws, and the training settings."""

    label: str
    energy: object  # FunctionEnergy
    model: object  # () -> pm.Model, the same density for PyMC3's samplers
    mean: np.ndarray
    var: np.ndarray
    exact_draws: object  # (rng, n) -> (n, dim)
    paper_ess: float  # the paper's L2HMC ESS per MH step (None: not given)
    step_size: float  # initial L2HMC step size
    hmc_grid: tuple  # step sizes tried for HMC
    hidden: tuple = (10, 10)
    train: dict = field(default_factory=dict)  # extra L2HMCSampler.train arguments
    preconditioned: dict = field(default_factory=dict)  # and for the preconditioned row only


def _gaussian_draws(cov):
    chol = np.linalg.cholesky(cov)
    return lambda rng, n: rng.standard_normal((n, len(cov))) @ chol.T


def _mog_draws(rng, n):
    centres = targets.MOG_CENTRES[rng.integers(0, len(targets.MOG_CENTRES), n)]
    return centres + np.sqrt(targets.MOG_VARIANCE) * rng.standard_normal((n, 2))


def _rough_well_draws(eta, dim):
    """Rejection sampling from N(0, I): accept with exp(-eta (cos(x/eta) + 1)) per coordinate."""

    def draw(rng, n):
        out = np.empty((n, dim))
        for j in range(dim):
            got = np.empty(0)
            while got.size < n:
                x = rng.standard_normal(2 * n)
                keep = rng.uniform(size=2 * n) < np.exp(-eta * (np.cos(x / eta) + 1.0))
                got = np.concatenate([got, x[keep]])
            out[:, j] = got[:n]
        return out

    return draw


def make_targets():
    icg_var = targets.icg_variances(50)
    return {
        "icg50": Target(
            "50-d ICG", FunctionEnergy(targets.icg_energy(50), 50, name="icg50"),
            lambda: targets.ill_conditioned_gaussian(50), np.zeros(50), icg_var,
            _gaussian_draws(np.diag(icg_var)), 0.073, step_size=0.1, hmc_grid=(0.05, 0.1, 0.15),
            hidden=(100, 100), train=dict(burn_in_weight=0.0, scaled_jump=True)),
        "scg": Target(
            "2-d SCG", FunctionEnergy(targets.scg_energy, 2, name="scg"),
            targets.strongly_correlated_gaussian, np.zeros(2), np.diag(targets.SCG_COV),
            _gaussian_draws(targets.SCG_COV), 0.232, step_size=0.1, hmc_grid=(0.1, 0.15, 0.2)),
        "mog": Target(
            "2-d MoG", FunctionEnergy(targets.mog_energy, 2, name="mog"),
            targets.mixture_of_gaussians, np.zeros(2), np.diag(targets.MOG_COV), _mog_draws,
            None, step_size=0.3, hmc_grid=(0.1, 0.2, 0.3),
            train=dict(start_temperature=20.0, temperature_decay=0.9993),
            preconditioned=dict(fresh_draws="chains")),
        "rough_well": Target(
            "2-d rough well", FunctionEnergy(targets.rough_well_energy(1e-2), 2, name="rough_well"),
            lambda: targets.rough_well(2, 1e-2), np.zeros(2), np.ones(2), _rough_well_draws(1e-2, 2),
            0.625, step_size=0.2, hmc_grid=(0.1, 0.2, 0.3), train=dict(constant_forces=True)),
    }


# -- one sampler run -> one row ----------------------------------------------------------------
def measure(target, draws, grads, seconds, sampler, step_size, accept):
    """Metrics of ``draws`` ``(n_draws, n_chains, dim)`` costing ``grads`` gradients and ``seconds``."""
    import arviz as az

    n_draws, n_chains, dim = draws.shape
    ess_step = ess_per_step(draws, target.mean, target.var)
    ess_worst_dim = float(ess_per_step(draws, target.mean, target.var, per_dim=True).min())
    bulk = az.ess(az.convert_to_dataset(np.swapaxes(draws, 0, 1)), method="bulk")["x"].values
    # Antithetic moves (x -> about 2 mu - x) inflate the bulk ESS of x but not of its square.
    squares = np.swapaxes((draws - target.mean) ** 2, 0, 1)
    bulk_sq = az.ess(az.convert_to_dataset(squares), method="bulk")["x"].values
    n_total = n_draws * n_chains
    modes = right_share = None
    if target.label.endswith("MoG"):
        right, left = (draws[..., 0] > 0).any(axis=0), (draws[..., 0] < 0).any(axis=0)
        modes = float(np.mean(right & left))  # chains that visit both modes
        right_share = float(np.mean(draws[..., 0] > 0))  # exact: 0.5
    return dict(sampler=sampler, step_size=step_size, accept=float(np.mean(accept)), ess_step=ess_step,
                ess_worst_dim=ess_worst_dim,
                bulk_step=float(bulk.min()) / n_total, bulk_sq_step=float(bulk_sq.min()) / n_total,
                ess_grad=ess_step * n_total / grads,
                ess_second=ess_step * n_total / seconds, grads_step=grads / n_total, seconds=seconds,
                both_modes=modes, right_share=right_share,
                acf=autocorrelation(draws, target.mean, target.var)[:200])


def run_ours(sampler, target, x0, n_draws, seed, name):
    sampler.sample(1, n_chains=len(x0), x0=x0, seed=seed)  # compile outside the timing
    start = time.perf_counter()
    draws, accept = sampler.sample(n_draws, n_chains=len(x0), x0=x0, seed=seed)
    seconds = time.perf_counter() - start
    grads = sampler.n_steps * draws.shape[0] * draws.shape[1]
    return measure(target, draws, grads, seconds, name, sampler.step_size, accept), draws


def run_pymc3(target, method, x0, n_draws, tune, seed, step_size=None, n_steps=10):
    """``pm.sample`` with PyMC3's NUTS or fixed-step HamiltonianMC, one chain per row of ``x0``."""
    import pymc3 as pm

    model = target.model()
    dim = len(target.mean)
    with model:
        if method == "NUTS":
            step = pm.NUTS()
        else:
            # Identity mass matrix, no adaptation, no step-size jitter: T = 10 leapfrog steps exactly.
            step = pm.HamiltonianMC(scaling=np.ones(dim), is_cov=True, step_scale=step_size * dim ** 0.25,
                                    path_length=(n_steps + 0.5) * step_size, adapt_step_size=False,
                                    step_rand=lambda eps: eps)
        start = time.perf_counter()
        idata = pm.sample(draws=n_draws, tune=tune, step=step, chains=len(x0), cores=1, random_seed=seed,
                          start=[{"x": row} for row in x0], return_inferencedata=True, progressbar=False,
                          compute_convergence_checks=False, discard_tuned_samples=False,
                          idata_kwargs={"save_warmup": True})
        seconds = time.perf_counter() - start
    stats, warm = idata.sample_stats, getattr(idata, "warmup_sample_stats", None)
    grads = float(stats["n_steps"].sum())  # ArviZ's name for PyMC3's tree_size / n_steps
    warm_grads = float(warm["n_steps"].sum()) if warm is not None else 0.0
    seconds *= grads / (grads + warm_grads)  # the share of the wall time spent after tuning
    draws = np.swapaxes(idata.posterior["x"].values, 0, 1)
    eps = float(stats["step_size"].mean())
    accept = stats["acceptance_rate" if method == "NUTS" else "accept"].values
    return measure(target, draws, grads, seconds, f"PyMC3 {method}", eps, accept)


def run_target(name, target, args):
    rng = np.random.default_rng(args.seed)
    x0 = target.exact_draws(rng, args.chains)
    rows, traces = [], {}
    for eps in target.hmc_grid:
        hmc = L2HMCSampler(target.energy, step_size=eps, zero_network=True, seed=args.seed, **PAPER_SAMPLER)
        row, draws = run_ours(hmc, target, x0, args.draws, args.seed + 1, f"HMC eps={eps:g}")
        rows.append(row)
        traces[row["sampler"]] = draws
    # The paper's estimator saturates at 1 and reads antithetic chains stuck in one
    # mixture mode as independent; ArviZ's bulk ESS picks the best step size.
    best = max(rows, key=lambda r: r["bulk_step"])

    def trained_row(name, sampler, **train):
        """Train ``sampler`` with ``train``, then run it as the row ``name``."""
        start = time.perf_counter()
        sampler.train(**train, train_steps=args.train_steps, batch_size=args.batch_size,
                      progressbar=args.progressbar, check=False)
        train_seconds = time.perf_counter() - start
        row, draws = run_ours(sampler, target, x0, args.draws, args.seed + 1, name)
        row.update(train_seconds=train_seconds, kept=sampler.selection["kept"] if sampler.selection else "trained")
        rows.append(row)
        traces[name] = draws

    paper_training = dict(PAPER_TRAINING, **target.train)
    trained_row("L2HMC", L2HMCSampler(target.energy, step_size=target.step_size, hidden=target.hidden,
                                      seed=args.seed, **PAPER_SAMPLER), **paper_training)
    # The paper's sampler and training with warm-up's diagonal preconditioner (and step size) added.
    trained_row("L2HMC preconditioned",
                L2HMCSampler(target.energy, step_size=target.step_size, hidden=target.hidden, seed=args.seed,
                             **dict(PAPER_SAMPLER, preconditioner="diag")),
                **dict(paper_training, warmup=True, **target.preconditioned))
    # The library's defaults, no per-target settings: warm-up (step size, diagonal preconditioner, T),
    # training with the per-coordinate loss until the jump stops improving, the better of the trained
    # networks and plain HMC kept.
    trained_row("L2HMC defaults", L2HMCSampler(target.energy, hidden=target.hidden, seed=args.seed))

    pymc_x0 = x0[: args.pymc3_chains]
    rows.append(run_pymc3(target, "HamiltonianMC", pymc_x0, args.draws, 0, args.seed,
                          step_size=best["step_size"]))
    rows.append(run_pymc3(target, "NUTS", pymc_x0, args.draws, args.tune, args.seed))
    return rows, traces, best


# -- output ------------------------------------------------------------------------------------
def _g(value, digits=3):
    return "-" if value is None else f"{value:.{digits}g}"


def _modes(rows):
    """Share of L2HMC's chains that visit both mixture modes / the most of any HMC step size."""
    ours = next(r for r in rows if r["sampler"] == "L2HMC")["both_modes"]
    if ours is None:
        return "-"
    hmc = max(r["both_modes"] for r in rows if r["sampler"].startswith("HMC"))
    return f"{ours:.0%} / {hmc:.0%}"


def summary_table(results):
    """Per target: the paper's ESS per step (L2HMC vs the best HMC), its worst coordinate,
    the minimum over coordinates of ArviZ's bulk ESS per step and per 1000 gradients
    (L2HMC vs NUTS)."""
    lines = ["| target | paper's L2HMC ESS/step | L2HMC ESS/step | HMC ESS/step (best eps) | ratio | "
             "worst coordinate's ESS/step: L2HMC / HMC | "
             "min bulk ESS/step: L2HMC / HMC | min bulk ESS per 1000 grads: L2HMC / NUTS | "
             "chains in both modes: L2HMC / HMC (any eps) | L2HMC training s | "
             "preconditioned: ESS/step, worst coordinate's ESS/step, chains in both modes | "
             "defaults: T, kept | defaults: min bulk ESS per 1000 grads | "
             "worst coordinate's ESS per 1000 grads: defaults / NUTS | defaults: setup s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (target, rows, best) in results.items():
        ours = next(r for r in rows if r["sampler"] == "L2HMC")
        tuned = next(r for r in rows if r["sampler"] == "L2HMC defaults")
        pre = next(r for r in rows if r["sampler"] == "L2HMC preconditioned")
        nuts = next(r for r in rows if r["sampler"] == "PyMC3 NUTS")
        per_grad = [1e3 * r["bulk_step"] / r["grads_step"] for r in (ours, nuts, tuned)]
        worst = [1e3 * r["ess_worst_dim"] / r["grads_step"] for r in (tuned, nuts)]
        lines.append(
            f"| {target.label} | {_g(target.paper_ess)} | {_g(ours['ess_step'])} | "
            f"{_g(best['ess_step'])} ({best['step_size']:g}) | {ours['ess_step'] / best['ess_step']:.1f}x | "
            f"{_g(ours['ess_worst_dim'])} / {_g(best['ess_worst_dim'])} | "
            f"{_g(ours['bulk_step'])} / {_g(best['bulk_step'])} | {_g(per_grad[0])} / {_g(per_grad[1])} | "
            f"{_modes(rows)} | {ours['train_seconds']:.0f} | {_g(pre['ess_step'])}, {_g(pre['ess_worst_dim'])}, "
            f"{_g(pre['both_modes'], 2)} | {tuned['grads_step']:.0f}, {tuned['kept']} | "
            f"{_g(per_grad[2])} | {_g(worst[0])} / {_g(worst[1])} | {tuned['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def details_table(results):
    lines = ["| target | sampler | eps | accept | ESS/step | worst coordinate's ESS/step | bulk ESS/step (min) | "
             "bulk ESS/step of (x - mean)^2 (min) | grads/step | ESS/grad | ESS/s | both modes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (target, rows, best) in results.items():
        for r in rows:
            lines.append(
                f"| {target.label} | {r['sampler']} | {r['step_size']:.3g} | {r['accept']:.2f} | "
                f"{_g(r['ess_step'])} | {_g(r['ess_worst_dim'])} | {_g(r['bulk_step'])} | {_g(r['bulk_sq_step'])} | "
                f"{r['grads_step']:.1f} | "
                f"{_g(r['ess_grad'])} | "
                f"{_g(r['ess_second'])} | {_g(r['both_modes'], 2)} |")
    return "\n".join(lines) + "\n"


def plot_autocorrelation(results, path):
    """Autocorrelation against gradient evaluations (the paper's Figure 1), one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, (name, (target, rows, best)) in zip(axes[0], results.items()):
        for r in rows:
            if r["sampler"].startswith("HMC") and r is not best:
                continue
            grads = np.arange(len(r["acf"])) * r["grads_step"]
            keep = grads <= 2000
            ax.plot(grads[keep], r["acf"][keep], label=r["sampler"])
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_title(target.label)
        ax.set_xlabel("gradient evaluations")
        ax.set_ylabel("autocorrelation")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_mixture(target, traces, best, path, n_chains=3, n_steps=300):
    """A few chains of L2HMC and of the best HMC over the mixture's density, started in one mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-4, 4, 200)
    xx, yy = np.meshgrid(grid, np.linspace(-2, 2, 100))
    density = sum(np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * targets.MOG_VARIANCE))
                  for c in targets.MOG_CENTRES)
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), sharey=True)
    for ax, name in zip(axes, ("L2HMC", best["sampler"])):
        draws = traces[name]
        chains = np.nonzero(draws[0, :, 0] > 0)[0][:n_chains]
        ax.contour(xx, yy, density, levels=6, colors="grey", linewidths=0.6)
        for c in chains:
            ax.plot(draws[:n_steps, c, 0], draws[:n_steps, c, 1], ".-", ms=2, lw=0.3)
        ax.set_title(f"{name}: {n_chains} chains, {n_steps} steps")
        ax.set_xlim(-4, 4)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main(argv=None):
    all_targets = make_targets()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(all_targets), choices=list(all_targets))
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 training steps of batch 50, 50 chains x 300 steps, "
                             "2 PyMC3 chains of 300 draws")
    parser.add_argument("--train-steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--chains", type=int, default=200, help="chains of our samplers")
    parser.add_argument("--draws", type=int, default=2000, help="MH steps per chain")
    parser.add_argument("--pymc3-chains", type=int, default=4, help="chains of PyMC3's HMC and NUTS")
    parser.add_argument("--tune", type=int, default=1000, help="NUTS tuning draws per chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="paper_results", help="where table.md, details.md and plots go")
    parser.add_argument("--progressbar", action="store_true", help="show training progress")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_steps, args.batch_size, args.chains, args.draws = 100, 50, 50, 300
        args.pymc3_chains, args.tune = 2, 300
    os.makedirs(args.out_dir, exist_ok=True)
    logging.getLogger("pymc3").setLevel(logging.ERROR)  # per-run chatter and fixed-step HMC's accept note

    results = {}
    begin = time.perf_counter()
    for name in args.targets:
        print(f"== {name}", file=sys.stderr, flush=True)
        rows, traces, best = run_target(name, all_targets[name], args)
        results[name] = (all_targets[name], rows, best)
        if name == "mog":
            plot_mixture(all_targets[name], traces, best, os.path.join(args.out_dir, "mixture.png"))
        del traces
    table, details = summary_table(results), details_table(results)
    for fname, text in (("table.md", table), ("details.md", details)):
        atomic_write(os.path.join(args.out_dir, fname), lambda f, text=text: f.write(text.encode()))
    plot_autocorrelation(results, os.path.join(args.out_dir, "autocorrelation.png"))
    print(f"T = 10; {args.chains} chains x {args.draws} MH steps from exact draws; training {args.train_steps} "
          f"steps of batch {args.batch_size}; PyMC3: {args.pymc3_chains} chains x {args.draws} draws; "
          f"seed {args.seed}; total {time.perf_counter() - begin:.0f} s\n")
    print(table)
    print(details)
    return results


if __name__ == "__main__":
    main()
