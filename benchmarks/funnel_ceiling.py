"""What the generalized leapfrog can do on Neal's funnel, against what training reaches.

The funnel (v ~ N(0, 3), x_i ~ N(0, exp(v / 2)), coordinate 0 is v) defeats every
constant step size: where v is low the x's are exp(v / 2) wide.  The non-centred
coordinates z_i = x_i exp(-v / 2) make it a Gaussian, and the generalized leapfrog can
run HMC's leapfrog in them without leaving x (:class:`NonCentredFunnel`, with masks
that move v alone, :func:`scale_alone_masks`).  With those masks, in one step:

* momentum half-steps: Q_v = v / (2 eps) on the x's scales their force x_i e^-v by
  e^(v/2) to z_i (the non-centred force), and T_v on v, sum_i x_i dU/dx_i / 2 - (d - 1) / 2,
  cancels the x's pull on v, leaving v / 9;
* the first x-update moves v alone (v += eps p_v, plain);
* the second moves the x's with the new v fixed: S_x = p_v / 2 rescales x by
  exp((v' - v) / 2) (the change of v is eps p_v), and Q_x = v' / (2 eps) scales the
  momentum's move to the local width exp(v' / 2).

The log-det of the x-rescaling, (d - 1)(v' - v) / 2, is exactly the change of the
Jacobian between x and z, so the MH ratio is the non-centred Hamiltonian's: a ceiling for
what learned auxiliary functions could reach here.  The rows, all from 200 chains started
at exact draws (so no row is judged on a part of the funnel it never reached) and run for
``--draws`` MH steps:

* HMC (zero networks) at the best of a few step sizes;
* the construction above (step size 0.3 and 0.5);
* ``L2HMCSampler(energy).train()`` with every default (warm-up, then training).

Figures: min over coordinates of bulk and tail ESS (ArviZ, all chains) per 1000
gradient evaluations, mean acceptance and acceptance in v's exact quintiles (the share
of each quintile is 20% at the start; the neck is the first), and v's moment z
(|mean| / MCSE and |sd - 3| / MCSE, the larger).

    python benchmarks/funnel_ceiling.py             # dim 10, 500 draws (a few minutes)
    python benchmarks/funnel_ceiling.py --quick     # 100 training steps, 100 draws
"""
import argparse
import time
import warnings

import numpy as np
from scipy import stats

from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano._theano import floatX, tt
from l2hmc_theano.diagnostics import acceptance_by_region
from l2hmc_theano.selection import min_ess

import arviz as az  # noqa: E402

#: v's exact quintiles: the regions of the acceptance columns (the neck first).
V_QUINTILES = 3.0 * stats.norm.ppf([0.2, 0.4, 0.6, 0.8])


def funnel_energy(dim):
    """U(v, x) = v^2 / 18 + sum_i (x_i^2 e^-v / 2 + v / 2), coordinate 0 is v; ``(batch, dim)`` -> ``(batch,)``."""
    def energy(X):
        v, x = X[:, 0], X[:, 1:]
        return tt.sqr(v) / 18.0 + 0.5 * tt.sqr(x).sum(axis=1) * tt.exp(-v) + 0.5 * (dim - 1) * v

    return FunctionEnergy(energy, dim, name=f"funnel{dim}")


def exact_draws(dim, n, rng):
    """``n`` independent draws of the funnel, ``(n, dim)``."""
    v = rng.normal(0.0, 3.0, size=n)
    return np.column_stack([v, rng.normal(size=(n, dim - 1)) * np.exp(v / 2)[:, None]]).astype(floatX)


def scale_alone_masks(n_steps, dim):
    """Masks ``(T, dim)`` whose first x-update moves v (coordinate 0) alone, the second the x's."""
    masks = np.ones((n_steps, dim), dtype=floatX)
    masks[:, 0] = 0.0
    return masks


class NonCentredFunnel:
    """S, Q, T that make the generalized leapfrog HMC's leapfrog in z = x exp(-v / 2), for
    the funnel with coordinate 0 the log-scale v, masks :func:`scale_alone_masks` and
    step size ``step_size`` (no jitter).  Same interface as the networks
    (:mod:`l2hmc_theano.networks`); nothing to train."""

    params = []

    def __init__(self, dim, step_size):
        self.dim, self.step_size = int(dim), float(step_size)

    def _on_xs(self, column):
        """``column`` ``(batch,)`` on the x's, 0 on v: ``(batch, dim)``."""
        return tt.concatenate([tt.zeros_like(column)[:, None], tt.repeat(column[:, None], self.dim - 1, axis=1)],
                              axis=1)

    def v_terms(self, x, grad, tau):
        Q = self._on_xs(x[:, 0] / (2.0 * self.step_size))
        pull_of_xs = 0.5 * (x[:, 1:] * grad[:, 1:]).sum(axis=1) - 0.5 * (self.dim - 1)
        T = tt.concatenate([pull_of_xs[:, None], tt.zeros_like(x[:, 1:])], axis=1)
        return tt.zeros_like(x), Q, T

    def x_terms(self, p, x_fixed, tau):
        # Only the second x-update (v fixed, at its new value) moves the x's; in the first the
        # x's are fixed and v moves with S = Q = T = 0 in its own column.
        S = self._on_xs(0.5 * p[:, 0])
        Q = self._on_xs(x_fixed[:, 0] / (2.0 * self.step_size))
        return S, Q, tt.zeros_like(p)


def non_centred_leapfrog(v, x, p, step_size, n_steps):
    """Reference: HMC's leapfrog on U(v, z) = v^2 / 18 + |z|^2 / 2, z = x e^-v/2, from momenta
    ``p`` ``(batch, dim)`` (p_v first); returns v', x' = z' e^v'/2 and p' (numpy)."""
    z = x * np.exp(-v / 2)[:, None]
    p = p.copy()
    for _ in range(n_steps):
        p[:, 0] -= 0.5 * step_size * v / 9.0
        p[:, 1:] -= 0.5 * step_size * z
        v, z = v + step_size * p[:, 0], z + step_size * p[:, 1:]
        p[:, 0] -= 0.5 * step_size * v / 9.0
        p[:, 1:] -= 0.5 * step_size * z
    return v, z * np.exp(v / 2)[:, None], p


def evaluate(sampler, dim, n_chains, n_draws, seed):
    """The figures of one sampler over ``n_chains`` chains started at exact draws."""
    x0 = exact_draws(dim, n_chains, np.random.default_rng(seed))
    start = time.perf_counter()
    draws, accept = sampler.sample(n_draws, n_chains=n_chains, x0=x0, seed=seed + 1)
    seconds = time.perf_counter() - start
    chains = np.swapaxes(draws, 0, 1).astype(float)  # (chains, draws, dim)
    smallest = min_ess(chains)
    v = az.convert_to_dataset({"v": chains[..., 0]})
    mean, sd = float(v["v"].mean()), float(v["v"].std())
    se_mean, se_sd = (float(az.mcse(v, method=m)["v"]) for m in ("mean", "sd"))
    starts = np.concatenate([x0[None, :, 0], draws[:-1, :, 0]]).T  # v where each transition started
    regions = acceptance_by_region(starts, accept.T, edges=V_QUINTILES)
    grads = n_draws * n_chains * sampler.n_steps
    return {"ess_per_kgrad": 1e3 * smallest / grads, "min_ess": smallest, "accept": float(accept.mean()),
            "by_region": "/".join(f"{r['accept']:.2f}" for r in regions),
            "moment_z": max(abs(mean) / se_mean, abs(sd - 3.0) / se_sd), "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=10, help="v and dim - 1 x's (default 10)")
    parser.add_argument("--draws", type=int, default=500, help="MH steps per chain (default 500)")
    parser.add_argument("--chains", type=int, default=200, help="chains, started at exact draws (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="100 training steps, 100 draws")
    args = parser.parse_args()
    dim, n_draws = args.dim, (100 if args.quick else args.draws)
    energy = funnel_energy(dim)
    rows = []

    for eps in (0.1, 0.2, 0.3):
        hmc = L2HMCSampler(energy, n_steps=10, step_size=eps, zero_network=True, preconditioner=None, seed=args.seed)
        rows.append((f"HMC, eps {eps}", 10, evaluate(hmc, dim, args.chains, n_draws, args.seed)))
    best = max(rows, key=lambda row: row[2]["ess_per_kgrad"])
    rows = [best]
    for eps, n_steps in ((0.3, 10), (0.5, 5)):
        ncp = L2HMCSampler(energy, n_steps=n_steps, step_size=eps, networks=NonCentredFunnel(dim, eps),
                           preconditioner=None, step_jitter=0.0, seed=args.seed)
        ncp.masks = scale_alone_masks(n_steps, dim)
        rows.append((f"non-centred construction, eps {eps}", n_steps, evaluate(ncp, dim, args.chains, n_draws, args.seed)))
    trained = L2HMCSampler(energy, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained.train(progressbar=False, **(dict(train_steps=100) if args.quick else {}))
    rows.append((f"trained, defaults (eps {trained.step_size:.3g})", trained.n_steps,
                 evaluate(trained, dim, args.chains, n_draws, args.seed)))

    print(f"Funnel, dim {dim}: {args.chains} chains x {n_draws} MH steps from exact draws (seed {args.seed}).\n")
    print("| sampler | T | min ESS / 1k grads | min ESS | accept | accept by v's exact quintile (neck first) "
          "| v moment z | sample s |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for label, n_steps, r in rows:
        print(f"| {label} | {n_steps} | {r['ess_per_kgrad']:.3f} | {r['min_ess']:.0f} | {r['accept']:.2f} "
              f"| {r['by_region']} | {r['moment_z']:.1f} | {r['seconds']:.1f} |")
    print(f"\nConstruction / HMC per gradient: {rows[1][2]['ess_per_kgrad'] / rows[0][2]['ess_per_kgrad']:.0f}x; "
          f"trained / HMC: {rows[-1][2]['ess_per_kgrad'] / rows[0][2]['ess_per_kgrad']:.2f}x.  A min ESS near the "
          f"number of chains ({args.chains}) is chains that never left where they started (the neck): the "
          "exact starts hold the marginal up, not the sampler.")


if __name__ == "__main__":
    main()
