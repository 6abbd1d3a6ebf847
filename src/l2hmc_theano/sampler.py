"""L2HMCSampler: a target, its auxiliary functions, masks and step size, compiled.

Numpy in, numpy out.  The symbolic pieces live in :mod:`.dynamics` and :mod:`.kernel`, the graphs
compiled from them in :mod:`.step_graphs`; this class owns the parameters and the compiled
functions (:class:`.compile_cache.CompiledFunctions`).  Its set-up before drawing (warm-up,
training, the choice of HMC or the networks) is :func:`.tuning.train`, its own draws
:func:`.chains.sample`.
"""
import contextlib
import math
import numbers

import numpy as np

from . import persistence
from ._theano import floatX, theano, tt
from .chain_guard import call_by_rows, guarded_mh_step
from .chains import sample
from .checks import as_batch, as_direction, check_count, check_fraction, check_hidden, check_positive
from .compile_cache import CompiledFunctions
from .dynamics import draw_masks, time_encoding
from .model_adapter import as_energy
from .hmc import energy_in_y, hmc_kernel
from .kernel import Step, propose
from .model_step import model_step_function
from .networks import AuxiliaryNetworks, ZeroFunctions
from .preconditioner import Preconditioner, WhitenedEnergy
from .retarget import retarget
from .starts import check_start
from .step_graphs import build_energy, build_energy_grad, build_transition, compiled_mh_step
from .tuning import train

__all__ = ["L2HMCSampler"]

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
        self.n_steps = 10 if self.adapt_n_steps else check_count(n_steps, "n_steps")
        step_size = check_positive(step_size, "step_size")
        self.hidden = check_hidden(hidden)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}.")
        self.seed = seed
        self.energy_target = as_energy(model, dim=dim)
        self.dim = self.energy_target.dim

        mask_seed, weight_seed, sample_seed, train_seed = np.random.SeedSequence(seed).spawn(4)
        # Persistent streams: repeated sample()/train() calls continue them.
        self.sample_rng = np.random.default_rng(sample_seed)
        self.train_rng = np.random.default_rng(train_seed)
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
        self.step_jitter = check_fraction(step_jitter, "step_jitter", zero_allowed=True)
        self.log_step_size = theano.shared(np.asarray(np.log(step_size), dtype=floatX), name="log_step_size")
        self.functions = CompiledFunctions()
        self.learning_rate = theano.shared(np.asarray(1e-3, dtype=floatX), name="learning_rate")
        self.temperature = theano.shared(np.asarray(1.0, dtype=floatX), name="temperature")
        self.history = None
        self.training_problems = []
        self.setup = None  # what the last train() decided (l2hmc_theano.budget)
        self.loaded_from = None  # the file load() read it from (its seconds of set-up are that run's)

    # -- parameters -------------------------------------------------------------------
    @property
    def step_size(self):
        """Current leapfrog step size eps (float)."""
        return math.exp(float(self.log_step_size.get_value(borrow=True)))

    def set_n_steps(self, n_steps):
        """Use T = ``n_steps`` leapfrog steps from now on: new time encodings, masks drawn again
        from the sampler's mask seed, and the compiled functions that depend on T dropped."""
        self.n_steps = check_count(n_steps, "n_steps")
        self.masks = draw_masks(self.n_steps, self.dim, np.random.default_rng(self._mask_seed))
        self.taus = time_encoding(self.n_steps)
        self.functions.drop_those_reading_T()

    def set_preconditioner(self, preconditioner):
        """Use ``preconditioner`` (a :class:`~l2hmc_theano.preconditioner.Preconditioner` of this
        dimension) from now on, dropping the compiled functions that read the old one."""
        if preconditioner.dim != self.dim:
            raise ValueError(f"The preconditioner has dimension {preconditioner.dim}, the target {self.dim}.")
        if preconditioner is not self.preconditioner:
            self.preconditioner = preconditioner
            self.functions.drop_those_reading_T()

    # -- compiled functions ---------------------------------------------------------------
    def _set_announce(self, on):
        """Say (on stderr) what compiles from now on, or stop: this sampler's functions and its
        target's non-centring maps."""
        self.functions.announce = bool(on)
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

    @property
    def compile_seconds(self):
        """Each compiled function's compile time in seconds, by name."""
        return self.functions.seconds

    def energy_grad_function(self):
        """The compiled x ``(batch, dim)`` -> U ``(batch,)``, dU/dx ``(batch, dim)`` (sampling
        coordinates), compiled at the first call."""
        return self.functions.get_or_compile("energy_grad", lambda: build_energy_grad(self.energy_target))

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

    def energy_in_y(self):
        """U, dU/dy and the failed rows at whitened positions, in NumPy (:func:`.hmc.energy_in_y`)."""
        return energy_in_y(self)

    def hmc_kernel(self, model_values=False):
        """Plain HMC's MH step whatever the networks, in NumPy (:func:`.hmc.hmc_kernel`)."""
        return hmc_kernel(self, model_values)

    def networks_are_zero(self):
        """Whether the auxiliary functions are S = Q = T = 0 as they stand (zero networks, or heads
        zeroed, e.g. when training kept plain HMC): the dynamics are then HMC's leapfrog."""
        if isinstance(self.networks, ZeroFunctions):
            return True
        check = getattr(self.networks, "heads_are_zero", None)
        return bool(check is not None and check())

    def compiled_mh_step(self, model_values=False, networks=None, carry=False):
        """The compiled MH step for the networks as they stand (:func:`.step_graphs.compiled_mh_step`)."""
        return compiled_mh_step(self, model_values, networks, carry)

    def mh_step_with_stats(self, x, v, direction, log_u, step_scale=None, networks=None):
        """One MH step of a batch: a :class:`~.kernel.Step` of its first eight fields (``x,
        accept_prob, accepted, diverging, energy, energy_error, logdet, potential``; ``energy`` is H
        at the returned state, ``energy_error`` H(proposal) - H(start), ``potential`` U there).
        ``step_scale`` ``(batch,)`` multiplies the step size per chain (default 1; see
        :meth:`draw_step_scale`).  ``networks``: see :meth:`compiled_mh_step`."""
        if step_scale is None:
            step_scale = np.ones(len(log_u), dtype=floatX)
        return Step.of_outputs(guarded_mh_step(self.compiled_mh_step(networks=networks),
                                                  [x, v, direction, log_u, step_scale]))

    def start_state(self, x):
        """U ``(batch,)`` and dU/dy ``(batch, dim)`` (the gradient in the preconditioner's
        coordinates y, which the dynamics use) at positions ``x`` ``(batch, dim)``: the state
        :meth:`mh_step_carrying` takes with ``x``."""
        potential, grad = self.energy_and_grad(x)
        if self.preconditioner is not None:
            grad = self.preconditioner.grad_to_y_numpy(grad).astype(floatX)
        return potential, grad

    def check_start(self):
        """Raise :class:`~l2hmc_theano.energy.StartError` where the target cannot start, naming why
        (:func:`.starts.check_start`)."""
        check_start(self)

    def energy_and_grad(self, x):
        """U ``(batch,)`` and dU/dx ``(batch, dim)`` at ``x`` ``(batch, dim)`` (sampling coordinates);
        NaN at a row whose evaluation raises (:mod:`.chain_guard`)."""
        fn = self.energy_grad_function()
        return tuple(call_by_rows(fn, [as_batch(x, self.dim, "x")], [0])[0])

    def mh_step_carrying(self, x, potential, grad, v, direction, log_u, step_scale=None, networks=None):
        """:meth:`mh_step_with_stats` for chains that carry U and dU/dy at ``x`` (``potential``
        ``(batch,)``, ``grad`` ``(batch, dim)``; first from :meth:`start_state`) from one step to the
        next: a :class:`~.kernel.Step` with U at the returned state and dU/dy there (``grad``).  A
        proposal then evaluates the energy T times, each with its gradient, instead of T + 2."""
        if step_scale is None:
            step_scale = np.ones(len(log_u), dtype=floatX)
        if self.networks_are_zero() if networks is None else not networks:  # HMC: the kernel of warm-up
            return self.hmc_kernel()(x, v, as_direction(direction, len(log_u)), log_u, step_scale, potential,
                                     grad)
        return Step.of_outputs(guarded_mh_step(self.compiled_mh_step(networks=networks, carry=True),
                                                  [x, v, direction, log_u, step_scale, potential, grad]), carry=True)

    def model_step_function(self):
        """``pm.sample``'s per-draw call for the networks as they stand (:func:`.model_step.model_step_function`)."""
        return model_step_function(self)

    def mh_step_with_model_values(self, x, v, direction, log_u, step_scale):
        """:meth:`mh_step_with_stats` with the next state as the model's flat vectors ``model_x``
        ``(batch, dim)``, log|det dx/du| ``(batch,)`` (for a model's energy) and dU/dy there
        ``(batch, dim)`` (a :class:`~.kernel.Step`): :meth:`model_step_function`'s call (which
        ``pm.sample``'s step resolves once per run), from U and dU/dy at ``x`` evaluated here
        (:meth:`start_state`)."""
        x = as_batch(x, self.dim, "x")
        potential, grad = self.start_state(x)
        return self.model_step_function()(x, v, direction, log_u, step_scale, potential, grad)

    def retarget(self, energy):
        """This sampler on another energy of the same layout (:func:`.retarget.retarget`)."""
        return retarget(self, energy)

    # -- public numpy API -----------------------------------------------------------------
    def transition(self, x, v, direction):
        """The deterministic T-step map FL(x, v, d), without MH.

        ``x, v``: ``(batch, dim)``; ``direction``: +1/-1, scalar or ``(batch,)``.
        Returns ``(x_new, v_new, logdet)`` of shapes ``(batch, dim)``, ``(batch, dim)``, ``(batch,)``.
        """
        x = as_batch(x, self.dim, "x")
        v = as_batch(v, self.dim, "v")
        if v.shape != x.shape:
            raise ValueError(f"x and v must have the same shape, got {x.shape} and {v.shape}.")
        d = as_direction(direction, x.shape[0])
        return tuple(self.functions.get_or_compile("transition", lambda: build_transition(self))(x, v, d))

    def energy(self, x):
        """Potential energy U(x) = -log p(x) per row of ``x`` ``(batch, dim)`` (sampling coordinates:
        for non-centred groups, minus the log-Jacobian of the map to the model); returns ``(batch,)``."""
        fn = self.functions.get_or_compile("energy", lambda: build_energy(self.energy_target))
        return call_by_rows(fn, [as_batch(x, self.dim, "x")], [0])[0][0]

    sample = sample

    # -- training -------------------------------------------------------------------------
    train = train

    # -- persistence -----------------------------------------------------------------------
    def save(self, path):
        """Save to ``path`` (``.npz``; data only, no pickle), atomically. Returns the path."""
        return persistence.save(self, path)
