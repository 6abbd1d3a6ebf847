"""The command line that trains an L2HMC sampler (:func:`l2hmc_theano.train` is :mod:`.fit`):

    python -m l2hmc_theano.train MODEL.py [--out FILE] [--train-steps N] ...

The command imports MODEL.py, finds its ``pm.Model`` (a module attribute named
``model``, the one ``--model-name`` names, or what ``build_model()`` returns),
trains with a progress bar, saves the sampler atomically and prints a summary.
"""
import argparse
import importlib.util
import os
import sys
import time
import warnings

import arviz as az
import numpy as np

from ._pymc3 import pm
from .cache import trained_sampler
from .checks import check_count, check_fraction, check_hidden, check_non_negative, check_positive
from .energy import StartError
from .pymc3_energy import ModelEnergy
from .many_chains import sample, write_netcdf
from .preconditioner import CHOICES
from .sampler import L2HMCSampler
from .selection import describe as describe_selection
from .step import L2HMC
from .training import FRESH_DRAWS, TrainingError, TrainingSettings
from .warmup import WarmupError, describe

__all__ = ["main"]


class CLIError(Exception):
    """An error reported as one line on stderr."""


def _argument(convert, check):
    """An argparse type: ``convert`` the text, then validate it with the sampler's own ``check``."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"cannot read {text!r}") from None
        try:
            return check(value)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


_positive_int = _argument(int, lambda v: check_count(v, "value"))
_positive_float = _argument(float, lambda v: check_positive(v, "value"))
_non_negative_float = _argument(float, lambda v: check_non_negative(v, "value"))
_n_steps = _argument(lambda t: t if t == "auto" else int(t), lambda v: v if v == "auto" else check_count(v, "value"))
_fraction = _argument(float, lambda v: check_fraction(v, "value"))
_hidden = _argument(lambda t: tuple(int(w) for w in t.split(",")), check_hidden)


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m l2hmc_theano.train",
        description="Train an L2HMC sampler on the PyMC3 model defined in a Python file and save it "
        "(weights, masks, step size and a fingerprint of the model, as .npz data). Load it with "
        "l2hmc_theano.load(FILE, model) or pm.sample(step=l2hmc_theano.L2HMC(sampler=FILE)).",
    )
    parser.add_argument("model_file", metavar="MODEL.py",
                        help="Python file defining the model: a pm.Model named `model`, the attribute named "
                        "by --model-name, or a function build_model() returning one")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="where to save the trained sampler (default: MODEL.l2hmc.npz next to MODEL.py)")
    parser.add_argument("--model-name", metavar="NAME", default=None,
                        help="name of the pm.Model attribute in MODEL.py, when it defines several")
    parser.add_argument("--train-steps", type=_positive_int, default=5000, metavar="N",
                        help="most training iterations, each one MH step of every chain and one Adam step; "
                        "training stops earlier once the expected squared jump stops improving (default: %(default)s)")
    parser.add_argument("--train-all-steps", action="store_true",
                        help="train for all --train-steps iterations, even when the jump has stopped improving")
    parser.add_argument("--preconditioner", choices=(*CHOICES, "none"), default="auto",
                        help="the affine map x = mu + L y fitted during warm-up, in whose coordinates the "
                        "networks work: auto (diagonal, corrected along the directions where the posterior is "
                        "correlated when warm-up finds such), diag, lowrank, dense, or none (the paper's "
                        "sampler) (default: %(default)s)")
    parser.add_argument("--target-accept", type=_fraction, default=0.8, metavar="A",
                        help="mean acceptance probability that warm-up tunes the step size to (default: %(default)s)")
    parser.add_argument("--warmup-iterations", type=_positive_int, default=600, metavar="N",
                        help="most warm-up iterations (HMC steps of every chain while the step size and the "
                        "preconditioner adapt); it stops earlier once they settle (default: %(default)s)")
    parser.add_argument("--batch-size", type=_positive_int, default=200, metavar="B",
                        help="chains trained in parallel (default: %(default)s)")
    parser.add_argument("--n-steps", type=_n_steps, default="auto", metavar="T",
                        help="leapfrog steps T per proposal, or 'auto': warm-up chooses T by HMC's predicted "
                        "bulk and tail ESS per second of a draw (default: %(default)s)")
    parser.add_argument("--step-size", type=_positive_float, default=0.1, metavar="EPS",
                        help="initial leapfrog step size; warm-up adapts it and training trains it (default: %(default)s)")
    parser.add_argument("--hidden", type=_hidden, default=(10, 10), metavar="H1,H2",
                        help="widths of the networks' two hidden layers (default: 10,10)")
    parser.add_argument("--learning-rate", type=_positive_float, default=1e-3, metavar="LR",
                        help="Adam learning rate, x0.96 every 1000 iterations (default: %(default)s)")
    parser.add_argument("--burn-in-weight", type=_non_negative_float, default=0.0, metavar="W",
                        help="weight of the paper's burn-in term of the loss, on a fresh batch drawn from N(0, I) "
                        "in the preconditioned coordinates (see --fresh-draws); 0 drops it and halves the cost "
                        "of an iteration: warm-up has brought the chains into the posterior already "
                        "(default: %(default)s)")
    parser.add_argument("--fresh-draws", choices=FRESH_DRAWS, default=TrainingSettings.fresh_draws,
                        help="with --burn-in-weight: where the fresh batch comes from: 'standard', the paper's "
                        "N(0, I) in the preconditioned coordinates, or 'chains', the Gaussian fitted to the chains' "
                        "mean and covariance (helps a multimodal posterior; on a Gaussian one it trains a "
                        "reflection through the mean) (default: %(default)s)")
    parser.add_argument("--scaled-jump", action="store_true",
                        help="with --paper-loss: measure each coordinate's jump in units of the chains' "
                        "spread, for posteriors whose scales differ widely (ill-conditioned)")
    parser.add_argument("--paper-loss", action="store_true",
                        help="train on the paper's loss of the whole jump |x' - x|^2 per chain, instead of the "
                        "default: the same loss of each coordinate's expected squared jump over the batch, "
                        "averaged over coordinates, so that the slowest coordinate counts")
    parser.add_argument("--keep-trained", action="store_true",
                        help="keep the trained networks even when plain HMC (the warm-up's step size, same T) "
                        "measures a higher min ESS on the training chains after training; by default the "
                        "better of the two is kept")
    parser.add_argument("--constant-forces", action="store_true",
                        help="treat dU/dx as a constant in the loss's gradient, for rough log densities")
    parser.add_argument("--centred", action="store_true",
                        help="sample the model as written: do not non-centre its Normal groups whose sigma depends "
                             "on other variables (funnels, centred hierarchies; by default they are sampled "
                             "non-centred where the prior dominates, see l2hmc_theano.reparam)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed for masks, initial weights, chains and momenta (default: %(default)s)")
    parser.add_argument("--compare", action="store_true",
                        help="after training, compare ESS per gradient evaluation with PyMC3's NUTS "
                        "(2 chains each, via pm.sample)")
    parser.add_argument("--compare-draws", type=_positive_int, default=1000, metavar="N",
                        help="draws per chain for --compare, after half as many tuning draws (default: %(default)s)")
    parser.add_argument("--sample", type=_positive_int, default=None, metavar="N",
                        help="after training, draw N draws from each of the training chains (--batch-size of "
                             "them, continued) with l2hmc_theano.sample and write them as ArviZ InferenceData "
                             "to --idata")
    parser.add_argument("--idata", metavar="FILE", default=None,
                        help="NetCDF file for --sample's draws, written whole or not at all "
                             "(default: MODEL.nc next to the model file)")
    parser.add_argument("--no-progressbar", action="store_true", help="hide the training progress bar")
    parser.add_argument("--no-cache", action="store_true",
                        help="train afresh: neither load the sampler trained on this model with these options last "
                             "time from the cache (l2hmc_theano.cache; L2HMC_THEANO_CACHE_DIR, "
                             "L2HMC_THEANO_CACHE=off) nor cache this one")
    return parser


def find_model(path, name=None):
    """Import ``path`` and return its ``pm.Model`` (see the module docstring)."""
    if not os.path.isfile(path):
        raise CLIError(f"model file {path!r} does not exist")
    module_name = "_l2hmc_user_model_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise CLIError(f"importing {path!r} failed: {type(err).__name__}: {err}") from err
    if name is not None:
        candidate = getattr(module, name, None)
        if not isinstance(candidate, pm.Model):
            raise CLIError(f"{path!r} has no pm.Model named {name!r}")
        return candidate
    candidate = getattr(module, "model", None)
    if isinstance(candidate, pm.Model):
        return candidate
    models = sorted(k for k, v in vars(module).items() if isinstance(v, pm.Model))
    if len(models) == 1:
        return getattr(module, models[0])
    if len(models) > 1:
        raise CLIError(f"{path!r} defines several models ({', '.join(models)}): choose one with --model-name")
    build = getattr(module, "build_model", None)
    if callable(build):
        built = build()
        if not isinstance(built, pm.Model):
            raise CLIError(f"build_model() in {path!r} returned {type(built).__name__}, not a pm.Model")
        return built
    raise CLIError(f"no pm.Model found in {path!r}: define `model = pm.Model()` or a build_model() function")


def _output_path(args):
    out = args.out or os.path.splitext(args.model_file)[0] + ".l2hmc.npz"
    _check_directory(out)
    return out


def _check_directory(path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"output directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise CLIError(f"output directory {directory!r} is not writable")


def _idata_path(args):
    if args.idata is not None and args.sample is None:
        raise CLIError("--idata is where --sample's draws go: add --sample N")
    if args.sample is None:
        return None
    path = args.idata or os.path.splitext(args.model_file)[0] + ".nc"
    _check_directory(path)
    return path


def compare_with_nuts(model, sampler, draws, seed):
    """ESS (ArviZ bulk, minimum over variables) per gradient evaluation and the seconds of sampling
    (compiles left out of both): {"NUTS": row, label: row}, the label "L2HMC", or "HMC (kept)" where
    training kept plain HMC."""
    rows = {}
    label = "HMC (kept)" if sampler.networks_are_zero() else "L2HMC"  # training may keep plain HMC
    with model:
        for name in ("NUTS", label):
            print(f"{name}: compiling, then 2 chains x {draws} draws after {draws // 2} tuning draws ...", flush=True)
            # Each step compiles in its constructor, outside the timed sampling: the same for both.
            step = pm.NUTS() if name == "NUTS" else L2HMC(sampler=sampler)
            start = time.perf_counter()
            idata = pm.sample(draws, tune=draws // 2, chains=2, cores=1, step=step, random_seed=seed,
                              return_inferencedata=True, progressbar=False, compute_convergence_checks=False)
            seconds = time.perf_counter() - start
            ess = float(az.ess(idata, method="bulk").to_array().min())
            grads = float(idata.sample_stats["n_steps"].sum()) + (
                idata.sample_stats["n_steps"].size if name != "NUTS" else 0)
            rows[name] = (ess, grads, seconds)
    return rows


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (CLIError, StartError, TrainingError, WarmupError) as err:  # the model's or the run's fault: one line
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    return 0


def _run(args):
    if args.scaled_jump and not args.paper_loss:
        raise CLIError("--scaled-jump rescales the paper's loss: add --paper-loss (the default per-coordinate "
                       "loss already weighs each coordinate by its own jump)")
    out = _output_path(args)
    idata_path = _idata_path(args)
    model = find_model(args.model_file, args.model_name)
    init = dict(n_steps=args.n_steps, step_size=args.step_size, hidden=args.hidden, seed=args.seed,
                preconditioner=None if args.preconditioner == "none" else args.preconditioner)
    training = dict(train_steps=args.train_steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                    burn_in_weight=args.burn_in_weight, fresh_draws=args.fresh_draws, scaled_jump=args.scaled_jump,
                    constant_forces=args.constant_forces, coordinate_loss=not args.paper_loss,
                    stop_when_flat=not args.train_all_steps, target_accept=args.target_accept,
                    warmup_iterations=args.warmup_iterations, compare_hmc=not args.keep_trained,
                    progressbar=not args.no_progressbar)
    try:
        energy = ModelEnergy(model, noncentre=not args.centred)
        sampler = L2HMCSampler(energy, **init)  # checks the arguments before the cache or training
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from err
    noncentring = sampler.energy_target.noncentring
    print(f"model: {', '.join(sampler.energy_target.var_names)} ({sampler.dim} dimensions"
          + (f"; non-centring {', '.join(noncentring.names)} where the prior dominates" if noncentring else "")
          + "); compiling ...", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = trained_sampler(energy, init, training, cache=not args.no_cache)
    for w in caught:  # the "looks poor" warning is repeated in the summary below
        if issubclass(w.category, UserWarning) and not str(w.message).startswith("The trained L2HMC"):
            print(f"warning: {w.message}", file=sys.stderr)
    history = sampler.history
    sampler.save(out)
    tail = slice(max(0, len(history["loss"]) - 100), None)
    if sampler.warmup_info is not None:
        print(describe(sampler.warmup_info))
    print(f"trained {len(history['loss'])} iterations in {history['seconds']:.1f} s; final acceptance "
          f"{history['accept'][tail].mean():.3f}, ESJD {history['esjd'][tail].mean():.4g}, "
          f"step size {sampler.step_size:.4g}")
    if sampler.selection is not None:
        print(describe_selection(sampler.selection))
    for problem in sampler.training_problems:
        print(f"warning: {problem}; consider NUTS for this model")
    print(f"saved to {out}")
    if args.compare:
        rows = compare_with_nuts(model, sampler, args.compare_draws, args.seed)
        mine = [name for name in rows if name != "NUTS"][0]
        print(f"{'sampler':<10} {'min ESS':>8} {'gradients':>10} {'ESS/grad':>9} {'seconds':>8}  (sampling only)")
        for name, (ess, grads, seconds) in rows.items():
            print(f"{name:<10} {ess:>8.0f} {grads:>10.0f} {ess / grads:>9.4f} {seconds:>8.1f}")
        if any(ess > 2 * args.compare_draws for ess, _, _ in rows.values()):
            print("(an ESS above the number of draws means anticorrelated draws: the estimate's cap, not mixing)")
        ratio = (rows[mine][0] / rows[mine][1]) / (rows["NUTS"][0] / rows["NUTS"][1])
        print(f"{mine} / NUTS ESS per gradient: {ratio:.2f}x" + ("" if ratio >= 1 else " (NUTS is better here)"))
    if idata_path is not None:
        _sample_to_file(model, sampler, args, idata_path)


def _sample_to_file(model, sampler, args, path):
    """--sample: the training chains continued for ``args.sample`` draws, written to ``path``."""
    chains = len((sampler.history or {}).get("chains", ())) or args.batch_size
    print(f"sampling {args.sample} draws x {chains} chains ...", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = sample(draws=args.sample, chains=chains, model=model, sampler=sampler, random_seed=args.seed,
                       progressbar=not args.no_progressbar)
    for w in caught:
        if issubclass(w.category, UserWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    write_netcdf(idata, path)
    ess = az.ess(idata, method="bulk")
    print(f"{idata.posterior.sizes['chain']} chains x {idata.posterior.sizes['draw']} draws in "
          f"{idata.posterior.attrs.get('sampling_time', float('nan')):.1f} s; min bulk ESS "
          f"{min(float(np.nanmin(ess[k].values)) for k in ess.data_vars):.0f}; written to {path} "
          "(arviz.from_netcdf reads it)")
