"""L2HMCSampler: a target, its auxiliary functions, masks and step size, compiled.

Numpy in, numpy out.  The symbolic pieces live in :mod:`.dynamics` and
:mod:`.kernel`; this class owns the parameters and the compiled functions.
"""
import contextlib
import hashlib
import math
import numbers
import sys
import time
import warnings

import numpy as np

from ._theano import Scan, change_flags, floatX, theano, tt
from .budget import choose_batch_size, training_decision
from .budget import describe as describe_setup
from .chain_guard import FAILURES, call_by_rows, mark_mh_step, neutralise_step_scale, replace_non_finite_starts
from .constants import fold_shared
from .dynamics import draw_masks, time_encoding
from .energy import StartError, as_energy, layout
from .hmc import hmc_step
from .kernel import Step, metropolis_hastings, propose
from .networks import AuxiliaryNetworks, ZeroFunctions
from .preconditioner import Preconditioner, WhitenedEnergy
from .progress import compiling

__all__ = ["L2HMCSampler"]

#: What each compiled function is, for the messages shown while it compiles.
_WHAT = {"energy_grad": "the energy and its gradient (and with it HMC's step: warm-up, the choice of T, "
                        "the draws while the networks are zero)",
         "mh_step_stats": "the MH step", "mh_step_model": "pm.sample's MH step", "energy": "the energy",
         "mh_step_stats_hmc": "the MH step (HMC's leapfrog: the networks' heads are zero)",
         "mh_step_model_hmc": "pm.sample's MH step (HMC's leapfrog: the networks' heads are zero)",
         "mh_step_carry": "the MH step",
         "mh_step_carry_hmc": "the MH step (HMC's leapfrog: the networks' heads are zero)",
         "transition": "the leapfrog map"}
#: The compiled functions that take T as an input or do not use it (kept when T changes).
_WITHOUT_T = ("energy_grad", "energy")
# pm.sample's step (one chain per call) writes T <= this many leapfrog steps out instead of scanning
# them: Scan's Python loop costs a call per step there (benchmarks/step_cost.py).  Their compile
# leaves out local_fill_sink: it pushes the gradient's fills through every later elementwise op,
# and with the networks' heads zero (all of the trajectory elementwise) its time grows steeply with T.
UNROLL_MAX_STEPS = 6
UNROLLED_OPT_EXCLUDE = ("local_fill_sink",)


def _fingerprint(shared_variables):
    """A digest of the values (and shapes, dtypes) of ``shared_variables``, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for p in shared_variables:
        value = np.ascontiguousarray(p.get_value(borrow=True))
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _check_positive(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return value


def _check_non_negative(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return value


def _check_fraction(value, name, zero_allowed=False):
    """``value`` as a float in (0, 1), or in [0, 1) with ``zero_allowed``."""
    interval = "[0, 1)" if zero_allowed else "(0, 1)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = np.nan
    if not (0.0 <= number < 1.0 and (zero_allowed or number > 0.0)):
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}.")
    return number


def _check_hidden(hidden):
    try:
        widths = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        widths = ()
    if len(widths) != 2 or min(widths) < 1 or any(float(h) != int(h) for h in hidden):
        raise ValueError(f"hidden must be two positive integer layer widths, e.g. (10, 10); got {hidden!r}.")
    return widths


def warn_training_problems(problems):
    """A ``UserWarning`` that the trained sampler looks poor, naming ``problems`` (a list of
    messages, ``sampler.training_problems``); nothing when there are none."""
    if problems:
        warnings.warn("The trained L2HMC sampler looks poor: " + "; ".join(problems)
                      + ". Train longer, lower step_size or learning_rate, or use NUTS.")


class L2HMCSampler:
    """An L2HMC sampler for a PyMC3 model or a batched Theano energy.

    Parameters
    ----------
    model : pymc3.Model, :class:`~l2hmc_theano.energy.Energy`, callable or None
        The target.  Default: the model on the context stack.  A callable is a
        Theano energy function of a ``(batch, dim)`` matrix (then pass ``dim``).
    n_steps : int or "auto"
        Leapfrog steps T per proposal.  "auto": 10 until warm-up, which then chooses T
        (see :mod:`l2hmc_theano.warmup`).
    step_size : float
        Initial leapfrog step size eps (stored, and trained later, as log eps).
    hidden : (int, int)
        Hidden-layer widths of the auxiliary networks.
    seed : int or None
        Seeds the masks and the initial network weights.
    zero_network : bool
        Use identically-zero auxiliary functions: the dynamics are HMC's leapfrog.
    dim : int, only with a callable ``model``.
    networks : auxiliary-functions object, optional
        Replaces the default networks (see :mod:`l2hmc_theano.networks`).
    step_jitter : float in [0, 1)
        Each MH step multiplies the step size by a factor drawn uniformly from
        [1 - step_jitter, 1 + step_jitter] per chain (independently of the state, so each
        step is still exact).  A fixed T and eps make HMC resonate on well-preconditioned
        targets (the trajectory comes back near its start); the jitter breaks that.
        0 gives the paper's fixed eps.
    preconditioner : "auto", "diag", "lowrank", "dense", None or a :class:`~l2hmc_theano.preconditioner.Preconditioner`
        The affine map x = mu + L y in whose coordinates y the dynamics and networks run
        (identity until warm-up fits it; see :meth:`train`).  "auto": warm-up fits a diagonal
        and a low rank correction, and keeps the correction where it finds directions the
        diagonal leaves stretched (correlated posteriors).  None: the paper's sampler, dynamics in x.
    """

    def __init__(
        self,
        model=None,
        n_steps="auto",
        step_size=0.1,
        hidden=(10, 10),
        seed=None,
        zero_network=False,
        dim=None,
        networks=None,
        preconditioner="auto",
        step_jitter=0.3,
    ):
        self.adapt_n_steps = isinstance(n_steps, str) and n_steps == "auto"
        self.n_steps = 10 if self.adapt_n_steps else _check_count(n_steps, "n_steps")
        step_size = _check_positive(step_size, "step_size")
        self.hidden = _check_hidden(hidden)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}.")
        self.seed = seed
        self.energy_target = as_energy(model, dim=dim)
        self.dim = self.energy_target.dim

        mask_seed, weight_seed, sample_seed, train_seed = np.random.SeedSequence(seed).spawn(4)
        # Persistent streams: repeated sample()/train() calls continue them.
        self._sample_rng = np.random.default_rng(sample_seed)
        self._train_rng = np.random.default_rng(train_seed)
        self._mask_seed = mask_seed
        self.masks = draw_masks(self.n_steps, self.dim, np.random.default_rng(mask_seed))
        self.taus = time_encoding(self.n_steps)
        self.zero_network = bool(zero_network)
        if networks is not None and zero_network:
            raise ValueError("Pass either networks=... or zero_network=True, not both.")
        if networks is not None:
            self.networks = networks
        elif self.zero_network:
            self.networks = ZeroFunctions()
        else:
            self.networks = AuxiliaryNetworks(self.dim, self.hidden, np.random.default_rng(weight_seed))
        self.auto_preconditioner = isinstance(preconditioner, str) and preconditioner == "auto"
        if preconditioner is None or isinstance(preconditioner, Preconditioner):
            self.preconditioner = preconditioner
        else:
            self.preconditioner = Preconditioner(self.dim, "diag" if self.auto_preconditioner else preconditioner)
        if self.preconditioner is not None and self.preconditioner.dim != self.dim:
            raise ValueError(f"The preconditioner has dimension {self.preconditioner.dim}, the target {self.dim}.")
        self.warmup_info = None
        self.selection = None
        self.step_jitter = _check_fraction(step_jitter, "step_jitter", zero_allowed=True)
        self.log_step_size = theano.shared(np.asarray(np.log(step_size), dtype=floatX), name="log_step_size")
        self._compiled = {}
        self._announce = False  # say what compiles (during train() with a progress bar)
        self.learning_rate = theano.shared(np.asarray(1e-3, dtype=floatX), name="learning_rate")
        self.temperature = theano.shared(np.asarray(1.0, dtype=floatX), name="temperature")
        self.history = None
        self.training_problems = []
        self.setup = None  # what the last train() decided (l2hmc_theano.budget)
        self.compile_seconds = {}  # each compiled function's compile time, by name
        self.loaded_from = None  # the file load() read it from (its seconds of set-up are that run's)

    # -- parameters -------------------------------------------------------------------
    @property
    def step_size(self):
        """Current leapfrog step size eps (float)."""
        return math.exp(float(self.log_step_size.get_value(borrow=True)))

    def set_n_steps(self, n_steps):
        """Use T = ``n_steps`` leapfrog steps from now on: new time encodings, masks drawn again
        from the sampler's mask seed, and the compiled functions that depend on T dropped."""
        self.n_steps = _check_count(n_steps, "n_steps")
        self.masks = draw_masks(self.n_steps, self.dim, np.random.default_rng(self._mask_seed))
        self.taus = time_encoding(self.n_steps)
        self._compiled = {k: f for k, f in self._compiled.items() if k in _WITHOUT_T}

    def set_preconditioner(self, preconditioner):
        """Use ``preconditioner`` (a :class:`~l2hmc_theano.preconditioner.Preconditioner` of this
        dimension) from now on, dropping the compiled functions that read the old one."""
        if preconditioner.dim != self.dim:
            raise ValueError(f"The preconditioner has dimension {preconditioner.dim}, the target {self.dim}.")
        if preconditioner is not self.preconditioner:
            self.preconditioner = preconditioner
            self._compiled = {k: f for k, f in self._compiled.items() if k in _WITHOUT_T}

    # -- input checks -----------------------------------------------------------------
    def _as_batch(self, array, name):
        array = np.asarray(array, dtype=floatX)
        if array.ndim != 2 or array.shape[1] != self.dim:
            hint = " For one point use x[None, :]." if array.shape == (self.dim,) else ""
            raise ValueError(
                f"{name} must have shape (batch, {self.dim}) (batch of chains x dimension of the "
                f"target), got shape {array.shape}.{hint}"
            )
        return array

    def _as_direction(self, direction, batch):
        d = np.asarray(direction, dtype=floatX)
        if d.ndim == 0:
            d = np.full(batch, d, dtype=floatX)
        if d.shape != (batch,) or not np.all((d == 1) | (d == -1)):
            raise ValueError(
                f"direction must be +1 or -1, as a scalar or one per chain (shape ({batch},)); "
                f"got {np.asarray(direction)!r}."
            )
        return d

    # -- compiled functions ---------------------------------------------------------------
    def _set_announce(self, on):
        """Say (on stderr) what compiles from now on, or stop: this sampler's functions and its
        target's non-centring maps."""
        self._announce = bool(on)
        noncentring = getattr(self.energy_target, "noncentring", None)
        if noncentring is not None:
            noncentring.announce = bool(on)

    @contextlib.contextmanager
    def announcing(self, on=True):
        """Within the block, say (on stderr) what compiles when ``on`` (:meth:`_set_announce`)."""
        self._set_announce(on)
        try:
            yield
        finally:
            self._set_announce(False)

    def _function(self, key, build, exclude=(), frozen=()):
        """The compiled function ``key``, built by ``build() -> (inputs, outputs)`` at its first use;
        ``exclude``: graph optimisations left out of its compile.  ``frozen``: shared variables
        compiled in as constants of their present values, with what is computed from them alone
        (:func:`.constants.fold_shared`); the function is compiled again, replacing the old one,
        once any of them changes."""
        name = key
        if frozen:
            key = (key, _fingerprint(frozen))
            for stale in [k for k in self._compiled if isinstance(k, tuple) and k[0] == name and k != key]:
                del self._compiled[stale]
        if key not in self._compiled:
            what = _WHAT.get(name, "HMC trajectories (to choose T)" if name.startswith("trajectory") else name)
            with change_flags(compute_test_value="off", allow_gc=False), compiling(what, self._announce):
                inputs, outputs = build()
                if frozen:
                    outputs = fold_shared(outputs, frozen)
                mode = theano.compile.mode.get_default_mode().excluding(*exclude) if exclude else None
                start = time.perf_counter()
                self._compiled[key] = theano.function(inputs, outputs, name=name, mode=mode)
                self.compile_seconds[name] = time.perf_counter() - start
        return self._compiled[key]

    def sampling_parameters(self):
        """The shared variables that sampling reads and leaves as they are: the networks' weights,
        the step size, the preconditioner's and the non-centring's weights (not the model's own
        shared data, nor the training's learning rate and temperature)."""
        params = list(getattr(self.networks, "params", [])) + [self.log_step_size]
        if self.preconditioner is not None:
            params += self.preconditioner.shared_variables()
        noncentring = getattr(self.energy_target, "noncentring", None)
        if noncentring is not None:
            params += list(noncentring.weights.values())
        return params

    def _inputs(self):
        return tt.matrix("x", dtype=floatX), tt.matrix("v", dtype=floatX), tt.vector("direction", dtype=floatX)

    def whitened(self, energy=None):
        """``energy`` (default: the target) in the preconditioner's coordinates y."""
        energy = self.energy_target if energy is None else energy
        return energy if self.preconditioner is None else WhitenedEnergy(energy, self.preconditioner)

    def propose(self, x, v, direction, networks=None, step_size=None, energy=None, step_scale=None, unroll=False,
                start=None):
        """The proposal from positions ``x`` ``(batch, dim)`` (in x): the dynamics run in y,
        the returned ``Proposal.x`` is in x (``v`` and ``grad_end`` stay in y).  The step size
        (default: the trained one) is multiplied per chain by ``step_scale`` ``(batch,)``.
        ``start``: U and dU/dy at ``x``, when known (see :func:`l2hmc_theano.kernel.propose`)."""
        networks = self.networks if networks is None else networks
        step_size = tt.exp(self.log_step_size) if step_size is None else step_size
        if step_scale is not None:
            step_size = step_size * tt.shape_padright(step_scale)
        y = x if self.preconditioner is None else self.preconditioner.to_y(x)
        p = propose(self.whitened(energy), networks, y, v, direction, step_size, self.taus, self.masks, unroll=unroll,
                    start=start)
        return p if self.preconditioner is None else p._replace(x=self.preconditioner.to_x(p.x))

    def _build_proposal(self, x, v, direction, step_scale=None, networks=None, unroll=False, start=None):
        return self.propose(x, v, direction, networks=networks, step_scale=step_scale, unroll=unroll, start=start)

    def draw_step_inputs(self, rng, n):
        """The random inputs of one MH step of ``n`` chains, drawn from ``rng``: momenta v ~ N(0, I)
        ``(n, dim)``, directions +1/-1 ``(n,)``, log-uniforms for acceptance ``(n,)`` and the step
        size's jitter ``(n,)`` (:meth:`draw_step_scale`), in that order."""
        v = rng.standard_normal((n, self.dim)).astype(floatX)
        d = rng.choice(np.array([-1.0, 1.0], dtype=floatX), size=n)
        log_u = np.log(rng.uniform(size=n)).astype(floatX)
        return v, d, log_u, self.draw_step_scale(rng, n)

    def draw_step_scale(self, rng, n):
        """Per-chain step-size factors ``(n,)``, uniform on [1 - step_jitter, 1 + step_jitter]."""
        j = self.step_jitter
        return rng.uniform(1.0 - j, 1.0 + j, size=n).astype(floatX) if j > 0 else np.ones(n, dtype=floatX)

    def _build_transition(self):
        x, v, d = self._inputs()
        p = self._build_proposal(x, v, d)
        return [x, v, d], [p.x, p.v, p.logdet]

    def _build_energy(self):
        x = tt.matrix("x", dtype=floatX)
        U, _ = self.energy_target.value_and_grad(x)
        return [x], U

    def _build_energy_grad(self):
        x = tt.matrix("x", dtype=floatX)
        U, dU = self.energy_target.value_and_grad(x)
        return [x], [U, dU]

    def energy_in_y(self):
        """``f(y, rows) -> (U (n,), dU/dy (n, dim), failed (n,) bool)`` at whitened positions ``y``
        ``(n, dim)`` (numpy; ``rows`` unused: :func:`.hmc.leapfrog`'s signature), from
        :meth:`energy_and_grad`'s compiled function.  A row whose evaluation raises is NaN and
        ``failed`` (:mod:`.chain_guard`), every row if all raise: the chains' starts evaluated
        (they carry U and dU/dy), so a proposal that cannot is that chain's divergence."""
        fn = self._function("energy_grad", self._build_energy_grad)
        fn.trust_input = True  # x is made a floatX (n, dim) array here and in energy_and_grad
        precond = self.preconditioner

        def energy(y, rows):
            x = y if precond is None else precond.to_x_numpy(y)
            try:
                (potential, grad), failed = call_by_rows(fn, [np.asarray(x, dtype=floatX)], [0])
            except FAILURES:
                return np.full(len(y), np.nan, dtype=floatX), np.full_like(y, np.nan), np.ones(len(y), dtype=bool)
            if precond is not None:
                grad = precond.grad_to_y_numpy(grad)
            return potential, grad, failed

        return energy

    def hmc_kernel(self, model_values=False):
        """Plain HMC's MH step (:func:`.hmc.hmc_step`) for chains that carry U and dU/dy (as
        :meth:`mh_step_carrying`), whatever the networks: ``f(x, v, direction, log_u, step_scale,
        potential, grad, step_size=None, n_steps=None)`` -> a :class:`~.kernel.Step` with every field
        (log-det 0, the proposal in y as ``y_proposal``); without ``model_values`` the model's flat
        vector and log|det dx/du| are None (not computed).
        The step size and T default to the sampler's; the preconditioner and non-centring are read
        as they stand at each call, so it serves warm-up (which changes them), its choice of T and
        the draws, with no compile but :meth:`energy_and_grad`'s.  A chain whose evaluation raises
        is rejected and diverging (:mod:`.chain_guard`); ``f.failed`` is then the ``(batch,)`` bool
        of such chains in the last call (else None)."""
        self._function("energy_grad", self._build_energy_grad)
        dim = self.dim
        to_model = getattr(self.energy_target, "to_model_with_jacobian", None)

        def step(x, v, direction, log_u, step_scale, potential, grad, step_size=None, n_steps=None):
            args = [np.ascontiguousarray(a, dtype=floatX) for a in (x, v, direction, log_u, step_scale, potential,
                                                                     grad)]
            x, v, direction, log_u, step_scale, potential, grad = args
            batch = x.shape[0] if x.ndim == 2 else -1
            if (any(a.shape != (batch, dim) for a in (x, v, grad))
                    or any(a.shape != (batch,) for a in (direction, log_u, step_scale, potential))):
                raise ValueError(
                    f"The HMC step takes x, v and grad of shape (batch, {dim}) and direction, log_u, step_scale and "
                    f"potential of shape (batch,); got {', '.join(str(a.shape) for a in args)}.")
            eps = float(self.step_size if step_size is None else step_size)
            T = int(self.n_steps if n_steps is None else n_steps)
            if T < 1:
                raise ValueError(f"n_steps must be >= 1, got {n_steps!r}.")
            precond = self.preconditioner
            y = x if precond is None else precond.to_y_numpy(x).astype(floatX)
            s = hmc_step(self.energy_in_y(), y, v, direction, log_u, eps * step_scale, T, potential, grad)
            proposal = s.y_proposal if precond is None else precond.to_x_numpy(s.y_proposal).astype(floatX)
            x_next = np.where(s.accepted[:, None], proposal, x)
            q, log_jacobian = None, None
            if model_values:
                q, log_jacobian = to_model(x_next) if to_model is not None else (x_next, np.zeros(batch, dtype=floatX))
            step.failed = s.failed if s.failed.any() else None
            return Step(x_next, s.accept_prob, s.accepted, s.diverging, s.energy, s.energy_error,
                        np.zeros(batch, dtype=floatX), s.potential, grad=s.grad, model_x=q, log_jacobian=log_jacobian,
                        y_proposal=s.y_proposal)

        step.failed = None
        return step

    def _build_mh_step_stats(self, model_values=False, hmc=False, unroll=False, carry=False):
        """One MH step with everything a PyMC3 step method reports (``model_values``: and the
        next state as the model's flat vector, with log|det dx/du|).  ``hmc``: with zero
        auxiliary functions (HMC's leapfrog); ``unroll``: the leapfrog steps written out;
        ``carry``: U ``(batch,)`` and dU/dy ``(batch, dim)`` at x are two more inputs, and dU/dy at
        the next state one more output (U there is one already)."""
        x, v, d = self._inputs()
        log_u = tt.vector("log_u", dtype=floatX)
        step_scale = tt.vector("step_scale", dtype=floatX)
        inputs, start = [x, v, d, log_u, step_scale], None
        if carry:
            start = (tt.vector("potential", dtype=floatX), tt.matrix("grad", dtype=floatX))
            inputs += list(start)
        p = self._build_proposal(x, v, d, step_scale, networks=ZeroFunctions() if hmc else None, unroll=unroll,
                                 start=start)
        x_next, accepted = metropolis_hastings(p, x, log_u)
        potential_next = tt.switch(accepted, p.potential_end, p.potential_start)
        energy_next = tt.switch(accepted, p.energy_end, p.energy_start)
        outputs = [x_next, p.accept_prob, accepted, p.diverging, energy_next,
                   p.energy_end - p.energy_start, p.logdet, potential_next]
        if model_values:
            outputs += list(self.energy_target.to_model_graph(x_next))
        if carry:
            outputs.append(tt.switch(tt.shape_padright(accepted), p.grad_end, start[1]))
        return inputs, outputs

    def networks_are_zero(self):
        """Whether the auxiliary functions are S = Q = T = 0 as they stand (zero networks, or heads
        zeroed, e.g. when training kept plain HMC): the dynamics are then HMC's leapfrog."""
        if isinstance(self.networks, ZeroFunctions):
            return True
        check = getattr(self.networks, "heads_are_zero", None)
        return bool(check is not None and check())

    def compiled_mh_step(self, model_values=False, networks=None, carry=False):
        """The compiled MH step of :meth:`mh_step_with_stats` (``carry``: of
        :meth:`mh_step_carrying`; ``model_values``: of :meth:`model_step_function`, which always
        carries) for the networks as they stand.

        When their heads are zero the step is compiled without them (HMC's leapfrog: the same
        numbers, without evaluating networks whose output is 0); ``networks=True`` keeps them
        regardless.  A later change of the heads needs a new call.  ``model_values`` (pm.sample's
        one-chain step) writes out T <= ``UNROLL_MAX_STEPS`` leapfrog steps instead of a scan, and
        compiles in :meth:`sampling_parameters` as constants (folded: ~20 % off the call at T = 3 on
        eight schools), so it is compiled again once training, warm-up or a load changes them."""
        hmc = self.networks_are_zero() if networks is None else not networks
        carry = carry or model_values
        unroll = model_values and self.n_steps <= UNROLL_MAX_STEPS and not self._energy_loops()
        key = ("mh_step_model" if model_values else "mh_step_carry" if carry else "mh_step_stats") + \
            ("_hmc" if hmc else "")
        return self._function(key, lambda: self._build_mh_step_stats(model_values, hmc=hmc, unroll=unroll,
                                                                     carry=carry),
                              exclude=UNROLLED_OPT_EXCLUDE if unroll else (),
                              frozen=self.sampling_parameters() if model_values else ())

    def _energy_loops(self):
        """Whether the target's batched energy holds a loop (a Scan: e.g. a Cholesky, which the
        vectoriser maps over rows).  Written out T times, such a step compiles a loop per energy
        evaluation, several times longer than the scanned step, so it stays scanned."""
        if not hasattr(self, "_loops"):
            with change_flags(compute_test_value="off"):
                U, dU = self.energy_target.value_and_grad(tt.matrix("x", dtype=floatX))
            nodes = theano.graph.basic.io_toposort(theano.graph.basic.graph_inputs([U, dU]), [U, dU])
            self._loops = any(isinstance(node.op, Scan) for node in nodes)
        return self._loops

    def mh_step_with_stats(self, x, v, direction, log_u, step_scale=None, networks=None):
        """One MH step of a batch: a :class:`~.kernel.Step` of its first eight fields (``x,
        accept_prob, accepted, diverging, energy, energy_error, logdet, potential``; ``energy`` is H
        at the returned state, ``energy_error`` H(proposal) - H(start), ``potential`` U there).
        ``step_scale`` ``(batch,)`` multiplies the step size per chain (default 1; see
        :meth:`draw_step_scale`).  ``networks``: see :meth:`compiled_mh_step`."""
        if step_scale is None:
            step_scale = np.ones(len(log_u), dtype=floatX)
        return Step.of_outputs(self._guarded_step(self.compiled_mh_step(networks=networks),
                                                  [x, v, direction, log_u, step_scale]))

    @staticmethod
    def _guarded_step(fn, args):
        """An MH step's outputs for ``args`` (every one batched): a chain whose evaluation raises
        stays where it is, rejected and diverging (:mod:`.chain_guard`), and the others go on."""
        args = [np.asarray(a) for a in args]
        return call_by_rows(fn, args, range(len(args)), neutralise_step_scale(4), mark_mh_step)[0]

    def start_state(self, x):
        """U ``(batch,)`` and dU/dy ``(batch, dim)`` (the gradient in the preconditioner's
        coordinates y, which the dynamics use) at positions ``x`` ``(batch, dim)``: the state
        :meth:`mh_step_carrying` takes with ``x``."""
        potential, grad = self.energy_and_grad(x)
        if self.preconditioner is not None:
            grad = self.preconditioner.grad_to_y_numpy(grad).astype(floatX)
        return potential, grad

    def check_start(self):
        """Raise :class:`~l2hmc_theano.energy.StartError` when U is not finite at the target's initial
        point (a model's test point), or dU/dx is not finite there nor at any of 20 points jittered
        around it (as warm-up's starts are), naming the variables and values that cause it, as
        PyMC3's ``pm.sample`` does; nothing for a target without an initial point."""
        describe = getattr(self.energy_target, "describe_bad_start", None)
        if describe is None:
            return
        x = np.asarray(self.energy_target.start_array(), dtype=floatX)[None, :]
        potential, grad = self.energy_and_grad(x)
        if np.isfinite(potential[0]) and not np.all(np.isfinite(grad)):
            # A kink at the initial point itself (|a| at a = 0; an ARMA's theta^0 at theta = 0): warm-up
            # starts from jittered points, as NUTS's jitter+adapt_diag does, so those are what must work.
            from .warmup import WarmupSettings, initial_chains

            near = initial_chains(self, 20, np.random.default_rng(0), WarmupSettings().jitter, tries=0)
            U, G = self.energy_and_grad(near)
            if np.any(np.isfinite(U) & np.all(np.isfinite(G), axis=1)):
                return
        if not (np.isfinite(potential[0]) and np.all(np.isfinite(grad))):
            raise StartError("L2HMC cannot start: " + describe(grad[0]))

    def energy_and_grad(self, x):
        """U ``(batch,)`` and dU/dx ``(batch, dim)`` at ``x`` ``(batch, dim)`` (sampling coordinates);
        NaN at a row whose evaluation raises (:mod:`.chain_guard`)."""
        fn = self._function("energy_grad", self._build_energy_grad)
        return tuple(call_by_rows(fn, [self._as_batch(x, "x")], [0])[0])

    def mh_step_carrying(self, x, potential, grad, v, direction, log_u, step_scale=None, networks=None):
        """:meth:`mh_step_with_stats` for chains that carry U and dU/dy at ``x`` (``potential``
        ``(batch,)``, ``grad`` ``(batch, dim)``; first from :meth:`start_state`) from one step to the
        next: a :class:`~.kernel.Step` with U at the returned state and dU/dy there (``grad``).  A
        proposal then evaluates the energy T times, each with its gradient, instead of T + 2."""
        if step_scale is None:
            step_scale = np.ones(len(log_u), dtype=floatX)
        if self.networks_are_zero() if networks is None else not networks:  # HMC: the kernel of warm-up
            return self.hmc_kernel()(x, v, self._as_direction(direction, len(log_u)), log_u, step_scale, potential,
                                     grad)
        return Step.of_outputs(self._guarded_step(self.compiled_mh_step(networks=networks, carry=True),
                                                  [x, v, direction, log_u, step_scale, potential, grad]), carry=True)

    def model_step_function(self):
        """``pm.sample``'s per-draw call, for the networks as they stand (see
        :meth:`compiled_mh_step`): ``f(x, v, direction, log_u, step_scale, potential, grad)``, a
        step of chains that carry U and dU/dy at ``x`` (as :meth:`mh_step_carrying`: T energy
        evaluations per step), gives a :class:`~.kernel.Step` with the next state as the model's
        flat vectors ``model_x`` ``(batch, dim)``, log|det dx/du| ``(batch,)`` (for a model's
        energy) and dU/dy at the next state ``grad`` ``(batch, dim)``.

        ``f`` converts and checks its inputs, and the compiled function trusts them (Theano's
        own per-call checks of every input, shared variables included, cost about as much as a
        leapfrog step of a small model).  Compiles :meth:`start_state`'s function too, for the
        state a chain starts from.  With the networks' heads zero it is :meth:`hmc_kernel`'s step (NumPy
        around that same function: nothing more to compile)."""
        self._function("energy_grad", self._build_energy_grad)  # start_state's, for a chain's first draw
        if self.networks_are_zero():
            to_model = getattr(self.energy_target, "to_model_with_jacobian", None)
            if to_model is not None:  # compiles the non-centring's map, if any, now rather than at a draw
                to_model(np.zeros((1, self.dim), dtype=floatX))
            return self.hmc_kernel(model_values=True)
        fn = self.compiled_mh_step(model_values=True)
        fn.trust_input = True
        dim = self.dim

        def mh_step(x, v, direction, log_u, step_scale, potential, grad):
            args = [np.asarray(a, dtype=floatX) for a in (x, v, direction, log_u, step_scale, potential, grad)]
            batch = args[0].shape[0] if args[0].ndim == 2 else -1
            if (any(a.shape != (batch, dim) for a in args[:2] + args[6:])
                    or any(a.shape != (batch,) for a in args[2:6])):
                raise ValueError(
                    f"mh_step_with_model_values takes x, v and grad of shape (batch, {dim}) and direction, log_u, "
                    f"step_scale and potential of shape (batch,); got {', '.join(str(a.shape) for a in args)}.")
            return Step.of_outputs(fn(*args), model_values=True, carry=True)

        return mh_step

    def mh_step_with_model_values(self, x, v, direction, log_u, step_scale):
        """:meth:`mh_step_with_stats` with the next state as the model's flat vectors ``model_x``
        ``(batch, dim)``, log|det dx/du| ``(batch,)`` (for a model's energy) and dU/dy there
        ``(batch, dim)`` (a :class:`~.kernel.Step`): :meth:`model_step_function`'s call (which
        ``pm.sample``'s step resolves once per run), from U and dU/dy at ``x`` evaluated here
        (:meth:`start_state`)."""
        x = self._as_batch(x, "x")
        potential, grad = self.start_state(x)
        return self.model_step_function()(x, v, direction, log_u, step_scale, potential, grad)

    def retarget(self, energy):
        """This sampler on another energy of the same layout (e.g. a model's conditional in a
        compound step).  Networks, masks and step size are shared, not copied; a model's
        non-centring (on or off, and its weights) is this sampler's."""
        import copy

        if energy.dim != self.dim or layout(energy) != layout(self.energy_target):
            raise ValueError(
                "The sampler was built for variables "
                f"{', '.join(f'{n}{tuple(s)}' for n, s, _ in layout(self.energy_target))}, not "
                f"{', '.join(f'{n}{tuple(s)}' for n, s, _ in layout(energy))}."
            )
        mine = getattr(self.energy_target, "noncentring", None)
        if hasattr(energy, "with_noncentring"):
            energy = energy.with_noncentring(mine is not None)
            if mine is not None:
                energy.noncentring.set_weights(mine.weight_values())
        new = copy.copy(self)
        new.energy_target = energy
        new._compiled = {}
        new.__dict__.pop("_loops", None)
        return new

    # -- public numpy API -----------------------------------------------------------------
    def transition(self, x, v, direction):
        """The deterministic T-step map FL(x, v, d), without MH.

        ``x, v``: ``(batch, dim)``; ``direction``: +1/-1, scalar or ``(batch,)``.
        Returns ``(x_new, v_new, logdet)`` of shapes ``(batch, dim)``, ``(batch, dim)``, ``(batch,)``.
        """
        x = self._as_batch(x, "x")
        v = self._as_batch(v, "v")
        if v.shape != x.shape:
            raise ValueError(f"x and v must have the same shape, got {x.shape} and {v.shape}.")
        d = self._as_direction(direction, x.shape[0])
        return tuple(self._function("transition", self._build_transition)(x, v, d))

    def energy(self, x):
        """Potential energy U(x) = -log p(x) per row of ``x`` ``(batch, dim)`` (sampling coordinates:
        for non-centred groups, minus the log-Jacobian of the map to the model); returns ``(batch,)``."""
        return call_by_rows(self._function("energy", self._build_energy), [self._as_batch(x, "x")], [0])[0][0]

    def sample(self, n_draws, n_chains=200, x0=None, seed=None, progressbar=False, networks=None):
        """Run ``n_chains`` independent L2HMC chains for ``n_draws`` MH steps.

        Each step draws v ~ N(0, I), d uniform on {-1, +1} and the step size's jitter per chain.
        ``x0``: ``(n_chains, dim)`` starts (default: draws from N(0, I) in the
        preconditioner's coordinates y).
        ``seed``: seeds starts, momenta, directions and acceptance draws
        (default: the sampler's own stream, derived from its seed).
        ``networks``: see :meth:`compiled_mh_step`.

        Returns ``(draws, accept_prob)`` of shapes ``(n_draws, n_chains, dim)`` and
        ``(n_draws, n_chains)``.  Starts and draws are in the target's sampling coordinates,
        those its energy takes: for a model whose Normal groups are non-centred
        (:mod:`l2hmc_theano.reparam`) ``sampler.energy_target.to_model`` maps a batch of
        them to the model's flat vectors.
        """
        n_draws, n_chains = int(n_draws), int(n_chains)
        if n_draws < 1 or n_chains < 1:
            raise ValueError(f"n_draws and n_chains must be >= 1, got {n_draws} and {n_chains}.")
        rng = self._sample_rng if seed is None else np.random.default_rng(seed)
        if x0 is None:
            x = rng.standard_normal((n_chains, self.dim)).astype(floatX)
            x = x if self.preconditioner is None else self.preconditioner.to_x_numpy(x).astype(floatX)
        else:
            x = self._as_batch(x0, "x0")
        if x.shape[0] != n_chains:
            raise ValueError(f"x0 must have shape ({n_chains}, {self.dim}), got {x.shape}.")
        draws = np.empty((n_draws, n_chains, self.dim), dtype=floatX)
        accept_prob = np.empty((n_draws, n_chains), dtype=floatX)
        steps = range(n_draws)
        if progressbar:
            from fastprogress.fastprogress import progress_bar

            steps = progress_bar(steps)
        if networks is None:  # once for the run, not at every step
            networks = not self.networks_are_zero()
        potential, grad = self.start_state(x)
        x, potential, grad, _ = replace_non_finite_starts(x, potential, grad, rng)
        for i in steps:
            out = self.mh_step_carrying(x, potential, grad, *self.draw_step_inputs(rng, n_chains), networks)
            x, accept_prob[i], potential, grad = out.x, out.accept_prob, out.potential, out.grad
            draws[i] = x
        return draws, accept_prob

    # -- training -------------------------------------------------------------------------
    def train(
        self,
        train_steps=5000,
        batch_size=200,
        learning_rate=1e-3,
        lr_decay=0.96,
        lr_decay_steps=1000,
        loss_scale=0.1,
        burn_in_weight=0.0,
        fresh_draws="standard",
        constant_forces=False,
        scaled_jump=False,
        coordinate_loss=True,
        start_temperature=None,
        temperature_decay=0.999,
        stop_when_flat=True,
        compare_hmc=True,
        warmup="auto",
        target_accept=0.8,
        warmup_iterations=600,
        seed=None,
        progressbar=True,
        check=True,
        train_networks=True,
    ):
        """Warm up, then train the networks and log eps by maximising expected squared jumped distance.

        **Warm-up** (:mod:`l2hmc_theano.warmup`; ``warmup="auto"`` runs it once, before the
        first training of this sampler; True always, False never): ``batch_size`` chains
        start around the model's initial point and run HMC (zero networks) while the step
        size adapts by dual averaging to ``target_accept`` and the preconditioner (if any)
        is fitted to the chains' positions and gradients, for at most
        ``warmup_iterations`` iterations (it stops early once the scales settle); with
        ``n_steps="auto"`` it then chooses T by the predicted ESS per second of a draw.  What it adapted is in
        ``self.warmup_info``.

        **Training**: each of at most ``train_steps`` iterations makes one MH step of
        ``batch_size`` persistent chains (those of the warm-up; a later call with the same
        ``batch_size`` continues them) and one Adam step on the loss
        ``mean l(chains) + burn_in_weight * mean l(fresh batch from q)``,
        ``l = loss_scale/delta - delta/loss_scale`` (paper Eq. 7-8; ``loss_scale``
        is lambda^2), all in the preconditioner's coordinates y.  With ``coordinate_loss``
        (the default) delta is each coordinate's expected squared jump over the batch and
        l is averaged over coordinates (:func:`l2hmc_theano.loss.coordinate_esjd_loss`),
        so the slowest coordinate counts; False gives the paper's |y' - y|^2 per chain.  With ``stop_when_flat``
        training stops once the ESJD has not improved for 3 windows of 100 iterations
        (``history["stopped_early"]``).  With ``compare_hmc`` (the default) the trained
        dynamics and plain HMC with the step size training started from then each run 50
        MH steps from the final chains (:mod:`l2hmc_theano.selection`); unless the networks'
        min ESS is 1.25x HMC's or more (their steps cost more time), the networks' heads are
        zeroed and that step size restored, so the sampler *is* that HMC.  ``self.selection``
        holds both figures and which was kept.
        The learning rate decays by ``lr_decay`` every
        ``lr_decay_steps`` iterations.  With ``start_temperature > 1`` the energy is
        annealed: U / max(1, start_temperature * temperature_decay**i).
        The default ``burn_in_weight=0`` drops the fresh batch: after warm-up the chains
        are in the posterior already, and it halves the cost per iteration (and on radon
        gave no worse a sampler); 1 is the paper's loss.
        With a burn-in term, ``fresh_draws="standard"`` (the default) draws the fresh
        batch from the paper's q = N(0, I) in y; ``"chains"`` from the Gaussian fitted to
        the chains' mean and covariance in y (:func:`l2hmc_theano.training.fresh_draws`):
        on a preconditioned two-mode mixture that is what makes training learn the jump
        between the modes, but on a Gaussian it trains a reflection through the mean.
        ``constant_forces=True`` treats dU/dx along the trajectory as a constant
        when differentiating the loss: a biased but far less noisy gradient for
        rough energies, where the exact one explodes through the T steps.
        ``scaled_jump=True`` (with ``coordinate_loss=False``) measures the jump per
        coordinate in units of the chains' current spread, sum_i ((y'_i - y_i) / sd_i)^2
        (for ill-conditioned targets without a preconditioner).

        Returns the history (also kept as ``self.history``): per-iteration arrays
        ``loss, accept, esjd, step_size, temperature, diverging, applied, replaced, masked, failed``
        plus ``seconds``, ``stopped_early``, ``interrupted``, ``backoffs`` and the final ``chains``
        ``(batch_size, dim)``.  An Adam step with a non-finite gradient is taken again with
        the diverging and stuck proposals' step sizes set to 0 (``masked`` counts them), so
        they drop out of the loss (``accept`` and ``diverging`` still count them as the
        dynamics proposed them); if that is still not finite the step is skipped
        (``applied`` 0) and the stuck chains are replaced by copies of healthy ones
        (``replaced``).  Training that collapses (a window of 50 iterations at mean
        acceptance < 0.1, most steps skipped, or a non-finite loss) goes back to the last
        healthy parameters and chains with half the step size and half the learning rate
        (``backoffs`` lists each, and a warning says so); after 6 back-offs it raises
        :class:`~l2hmc_theano.training.TrainingError`.  Training never ends in a collapsed
        window: it goes back to the last healthy one.  Ctrl-C stops early and keeps what
        was learned.  With ``check``, a poorly trained sampler (see
        :func:`l2hmc_theano.diagnostics.training_warnings`) gets a ``UserWarning``
        recommending NUTS; the messages are kept in ``self.training_problems``.

        **Budget** (:mod:`l2hmc_theano.budget`): ``batch_size="auto"`` takes as many chains (16 to
        200) as keep a batched gradient cheap; ``train_networks="auto"`` trains only where the
        training is predicted to cost less than half of what plain HMC would take to a usable
        posterior, else the sampler is that HMC (heads zeroed; ``history`` then holds warm-up's
        chains and no iterations); False never trains.  ``self.setup`` says what was decided and
        why (:func:`l2hmc_theano.budget.describe`).
        """
        from .training import TrainingSettings, build_training_step, run_training
        from .warmup import WarmupSettings
        from .warmup import warmup as run_warmup

        anneal = start_temperature is not None and float(start_temperature) > 1.0
        if anneal and not 0.0 < float(temperature_decay) < 1.0:
            raise ValueError(f"temperature_decay must be in (0, 1), got {temperature_decay!r}.")
        if warmup not in ("auto", True, False):
            raise ValueError(f"warmup must be 'auto', True or False, got {warmup!r}.")
        if train_networks not in ("auto", True, False):
            raise ValueError(f"train_networks must be 'auto', True or False, got {train_networks!r}.")
        plan = {"batch_note": f"{batch_size} chains", "train": train_networks is not False,
                "reason": "train_networks=True" if train_networks is True else "train_networks=False"}
        one_chain_seconds = None
        with self.announcing(progressbar):
            if progressbar and not self._compiled:
                print("L2HMC: compiling Theano functions; the first run on a machine builds their C code on every "
                      "core (a minute or more), later runs reuse Theano's cache.", file=sys.stderr, flush=True)
            self.check_start()  # before anything else compiles: a model that cannot start fails now
            if batch_size == "auto" or train_networks == "auto":
                start = getattr(self.energy_target, "start_array", None)
                start = np.asarray(start() if start is not None else np.zeros(self.dim), dtype=floatX)
                auto_batch, one_chain_seconds, note = choose_batch_size(self, start)
                if batch_size == "auto":
                    batch_size, plan["batch_note"] = auto_batch, note
        settings = TrainingSettings(
            train_steps=_check_count(train_steps, "train_steps"),
            batch_size=_check_count(batch_size, "batch_size"),
            learning_rate=_check_positive(learning_rate, "learning_rate"),
            lr_decay=float(lr_decay), lr_decay_steps=_check_count(lr_decay_steps, "lr_decay_steps"),
            loss_scale=_check_positive(loss_scale, "loss_scale"),
            burn_in_weight=_check_non_negative(burn_in_weight, "burn_in_weight"), fresh_draws=fresh_draws,
            constant_forces=bool(constant_forces), scaled_jump=bool(scaled_jump),
            coordinate_loss=bool(coordinate_loss),
            start_temperature=float(start_temperature) if anneal else 1.0,
            temperature_decay=float(temperature_decay), stop_when_flat=bool(stop_when_flat),
        )
        warmup_settings = WarmupSettings(target_accept=_check_fraction(target_accept, "target_accept"),
                                         max_iterations=_check_count(warmup_iterations, "warmup_iterations"))
        rng = self._train_rng if seed is None else np.random.default_rng(seed)
        chains = None if self.history is None else self.history.get("chains")
        with self.announcing(progressbar):
            warmed = warmup is True or (warmup == "auto" and self.warmup_info is None and chains is None)
            if warmed:
                chains, self.warmup_info = run_warmup(self, settings.batch_size, rng, warmup_settings, progressbar)
            if train_networks == "auto":
                plan["train"], plan["reason"] = training_decision(self, self.warmup_info if warmed else None,
                                                                  one_chain_seconds)
            self.setup = plan
            if progressbar:
                print("L2HMC: " + describe_setup(plan), file=sys.stderr, flush=True)
            if not plan["train"]:
                return self._skip_training(chains)
            trained_from = self.step_size
            key = settings.graph_key()  # compiled after warm-up, which may change T
            if key not in self._compiled:
                with compiling("the training step (the gradient through the leapfrog: the longest)", progressbar):
                    self._compiled[key] = build_training_step(self, settings, self.temperature if anneal else None)
        self.learning_rate.set_value(np.asarray(settings.learning_rate, dtype=floatX))
        self.history = run_training(self, self._compiled[key], settings, rng, progressbar, chains=chains,
                                    temperature=self.temperature if anneal else None)
        self.selection = None
        if compare_hmc and hasattr(self.networks, "zero_heads"):
            with self.announcing(progressbar):
                self._keep_better_of_trained_and_hmc(trained_from, rng)
        self.training_problems = []
        if check and not (self.selection is not None and self.selection["kept"] == "hmc"):
            from .diagnostics import training_warnings

            self.training_problems = training_warnings(self, self.history, baseline=self.selection is None)
            warn_training_problems(self.training_problems)
        return self.history

    def _skip_training(self, chains):
        """No training (see :mod:`.budget`): the sampler is HMC with warm-up's adaptation (the
        networks' heads zeroed), ``history`` warm-up's chains and no iterations."""
        from .training import empty_history

        if hasattr(self.networks, "zero_heads"):
            self.networks.zero_heads()
        self.history = empty_history(chains)
        self.selection = None
        self.training_problems = []
        return self.history

    def _keep_better_of_trained_and_hmc(self, hmc_step_size, rng):
        """Compare the trained dynamics with HMC at ``hmc_step_size`` on the training chains
        (:func:`~l2hmc_theano.selection.compare_with_hmc`); keep HMC unless the networks' min ESS
        is ``selection.NETWORKS_MARGIN`` times its or more (:func:`~l2hmc_theano.selection.keep_trained`)."""
        from .selection import compare_with_hmc, keep_trained

        chains = self.history["chains"]
        if len(chains) < 4:  # too few chains for a rank-normalised ESS
            return
        self.selection = compare_with_hmc(self, chains, hmc_step_size, rng)
        self.selection["kept"] = "trained" if keep_trained(self.selection) else "hmc"
        self.selection["hmc_step_size"] = float(hmc_step_size)
        if self.selection["kept"] == "hmc":
            self.networks.zero_heads()
            self.log_step_size.set_value(np.asarray(np.log(hmc_step_size), dtype=floatX))

    # -- persistence -----------------------------------------------------------------------
    def save(self, path):
        """Save to ``path`` (``.npz``; data only, no pickle), atomically. Returns the path."""
        from .persistence import save

        return save(self, path)
