"""What network training reaches on the 10-d funnel, variant by variant (issue 12, item 2).

Each variant is warmed up with the defaults (diagonal preconditioner, eps by dual averaging,
200 chains), then trained for ``--steps`` iterations (batch 200, T = 10, no early stop, no
HMC comparison), and judged from exact starts: 200 chains x 400 MH steps, against the same
sampler with its networks zeroed (HMC at the trained eps).  A variant is four choices,
written ``masks/heads/loss/chains``:

* masks: ``random`` (the default halves) or ``alone`` (v moves alone,
  :func:`funnel_ceiling.scale_alone_masks`);
* heads: ``default`` (S, Q = exp(c) tanh(.), c = 0), ``wide`` (c_Q = 2.5, c_S = 1: the
  range the non-centred construction needs) or ``linear`` (default heads plus a linear map
  of the network's inputs, starting at 0, added to S, Q and T);
* loss: ``coordinate`` (the default) or ``chain`` (the paper's per-chain loss);
* chains: ``warmup`` (training starts from warm-up's chains) or ``exact`` (from exact draws:
  an oracle, which a real model does not have).

Columns: min over coordinates of bulk and tail ESS (near 200, the number of chains, is
chains stuck where they started), the bulk ESS of v, for the trained sampler and for HMC,
and the trained sampler's acceptance of one step from 4000 exact draws, in bins of v.

    python benchmarks/funnel_training.py                                   # every variant (~30 min)
    python benchmarks/funnel_training.py --variants alone/wide/chain/exact random/default/coordinate/warmup
"""
import argparse
import time
import warnings

import numpy as np

import funnel_ceiling as fc
from l2hmc_theano import L2HMCSampler
from l2hmc_theano._theano import floatX, theano, tt
from l2hmc_theano.diagnostics import acceptance_by_region
from l2hmc_theano.networks import MLP, AuxiliaryNetworks
from l2hmc_theano.warmup import WarmupSettings, warmup

import arviz as az  # noqa: E402

DIM, N_STEPS = 10, 10
VARIANTS = ["random/default/coordinate/exact", "alone/wide/coordinate/exact", "random/default/chain/exact",
            "alone/default/chain/exact", "random/wide/chain/exact", "alone/wide/chain/exact",
            "alone/wide/chain/warmup", "alone/linear/chain/warmup", "random/linear/chain/warmup"]
V_EDGES = [-6.0, -3.0, 0.0, 3.0, 6.0]


class LinearPathMLP(MLP):
    """The paper's network plus a linear map of its inputs added to S, Q and T (zero at first)."""

    def __init__(self, name, in_dims, dim, hidden, rng, head_scale=1e-3):
        super().__init__(name, in_dims, dim, hidden, rng, head_scale)
        self.linear = {}
        for key in ("S", "Q", "T"):
            self.linear[key] = [theano.shared(np.zeros((n, dim), dtype=floatX), name=f"{name}/{key}/linear{k}")
                                for k, n in enumerate(in_dims)]
            self.params.extend(self.linear[key])

    def __call__(self, *inputs):
        S, Q, T = super().__call__(*inputs)
        direct = {key: sum(tt.dot(x, W) for x, W in zip(inputs, ws)) for key, ws in self.linear.items()}
        return S + direct["S"], Q + direct["Q"], T + direct["T"]

    def zero_heads(self):
        super().zero_heads()
        for ws in self.linear.values():
            for W in ws:
                W.set_value(np.zeros_like(W.get_value()))


class LinearPathNetworks(AuxiliaryNetworks):
    """The default two networks, each a :class:`LinearPathMLP` (same weights drawn, in the same order)."""

    def __init__(self, dim, hidden, rng):
        self.dim, self.hidden = int(dim), tuple(hidden)
        self.v_net = LinearPathMLP("vnet", (dim, dim, 2), dim, self.hidden, rng)
        self.x_net = LinearPathMLP("xnet", (dim, dim, 2), dim, self.hidden, rng)
        self.params = self.v_net.params + self.x_net.params


def build(masks, heads, seed):
    """The sampler of a variant, before warm-up."""
    networks = None
    if heads == "linear":  # the weights the sampler would draw itself: its seed's second stream
        weight_seed = np.random.SeedSequence(seed).spawn(4)[1]
        networks = LinearPathNetworks(DIM, (10, 10), np.random.default_rng(weight_seed))
    sampler = L2HMCSampler(fc.funnel_energy(DIM), n_steps=N_STEPS, step_size=0.1, seed=seed, networks=networks)
    if masks == "alone":
        sampler.masks = fc.scale_alone_masks(N_STEPS, DIM)
    if heads == "wide":
        for net in (sampler.networks.v_net, sampler.networks.x_net):
            net.log_scale_Q.set_value(np.full(DIM, 2.5, dtype=floatX))
            net.log_scale_S.set_value(np.full(DIM, 1.0, dtype=floatX))
    return sampler


def min_and_v_ess(sampler, rng):
    """(min over coordinates of bulk and tail ESS, bulk ESS of v) over 200 chains x 400 steps from exact draws."""
    draws, _ = sampler.sample(400, n_chains=200, x0=fc.exact_draws(DIM, 200, rng), seed=1)
    data = az.convert_to_dataset({"x": np.swapaxes(draws, 0, 1).astype(float)})
    bulk, tail = (az.ess(data, method=m)["x"].values for m in ("bulk", "tail"))
    return float(min(bulk.min(), tail.min())), float(bulk[0])


def accept_by_v(sampler):
    """Acceptance of one MH step from 4000 exact draws, with v in each bin -6..-3, ..., 3..6."""
    x0 = fc.exact_draws(DIM, 4000, np.random.default_rng(9))
    v = np.random.default_rng(1).standard_normal(x0.shape).astype(floatX)
    d = np.where(np.random.default_rng(3).uniform(size=len(x0)) < 0.5, 1.0, -1.0).astype(floatX)
    log_u = np.log(np.random.default_rng(2).uniform(size=len(x0))).astype(floatX)
    accept = sampler.mh_step_with_stats(x0, v, d, log_u)[1]
    regions = acceptance_by_region(x0[:, 0], accept, edges=V_EDGES)[1:-1]  # without the two open ends
    return " / ".join(f"{r['accept']:.2f}" for r in regions)


def run(variant, steps, seed):
    masks, heads, loss, start = variant.split("/")
    sampler = build(masks, heads, seed)
    with warnings.catch_warnings():  # "did not settle": the funnel's scales never do
        warnings.simplefilter("ignore")
        chains, sampler.warmup_info = warmup(sampler, 200, np.random.default_rng(seed), WarmupSettings(), False)
    if start == "exact":
        chains = fc.exact_draws(DIM, 200, np.random.default_rng(seed + 100))
    sampler.history = {"chains": chains}
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler.train(train_steps=steps, progressbar=False, compare_hmc=False, check=False, stop_when_flat=False,
                      warmup=False, coordinate_loss=(loss == "coordinate"))
    seconds = time.perf_counter() - begin
    rng = np.random.default_rng(5)
    learned = min_and_v_ess(sampler, rng)
    by_v = accept_by_v(sampler)
    sampler.networks.zero_heads()
    hmc = min_and_v_ess(sampler, rng)
    return (f"| {masks} | {heads} | {loss} | {start} | {learned[0]:.0f} | {hmc[0]:.0f} | {learned[1]:.0f} "
            f"| {hmc[1]:.0f} | {by_v} | {sampler.step_size:.3g} | {seconds:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, metavar="MASKS/HEADS/LOSS/CHAINS",
                        help="variants to train (default: all nine of docs/paper_results/funnel_learning.md)")
    parser.add_argument("--steps", type=int, default=2000, help="training iterations (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for variant in args.variants:
        parts = variant.split("/")
        if (len(parts) != 4 or parts[0] not in ("random", "alone") or parts[1] not in ("default", "wide", "linear")
                or parts[2] not in ("coordinate", "chain") or parts[3] not in ("warmup", "exact")):
            parser.error(f"bad variant {variant!r}: expected masks/heads/loss/chains, e.g. alone/wide/chain/exact")
    print(f"10-d funnel, seed {args.seed}: {args.steps} training iterations; 200 chains x 400 steps from exact draws.\n")
    print("| masks | heads | loss | training chains | learned min ESS | HMC min ESS | learned bulk ESS of v "
          "| HMC bulk ESS of v | learned acceptance, v in -6..-3 / -3..0 / 0..3 / 3..6 | trained eps | train s |")
    print("|---|---|---|---|---:|---:|---:|---:|---|---:|---:|")
    for variant in args.variants:
        print(run(variant, args.steps, args.seed), flush=True)


if __name__ == "__main__":
    main()
