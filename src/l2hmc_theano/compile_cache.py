"""A sampler's compiled Theano functions, compiled at their first use and kept by key."""
import hashlib
import time

import numpy as np

from ._theano import change_flags, compile_fixes, theano
from .constants import fold_shared
from .progress import compiling

__all__ = ["CompiledFunctions"]

#: What each compiled function is, for the messages shown while it compiles.
WHAT = {"energy_grad": "the energy and its gradient (and with it HMC's step: warm-up, the choice of T, "
                       "the draws while the networks are zero)",
        "mh_step_stats": "the MH step", "mh_step_model": "pm.sample's MH step", "energy": "the energy",
        "mh_step_stats_hmc": "the MH step (HMC's leapfrog: the networks' heads are zero)",
        "mh_step_model_hmc": "pm.sample's MH step (HMC's leapfrog: the networks' heads are zero)",
        "mh_step_carry": "the MH step",
        "mh_step_carry_hmc": "the MH step (HMC's leapfrog: the networks' heads are zero)",
        "transition": "the leapfrog map"}
#: The compiled functions that take T as an input or do not use it (kept when T changes).
WITHOUT_T = ("energy_grad", "energy")


def fingerprint(shared_variables):
    """A digest of the values (and shapes, dtypes) of ``shared_variables``, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for p in shared_variables:
        value = np.ascontiguousarray(p.get_value(borrow=True))
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


class CompiledFunctions(dict):
    """Compiled functions by key: a name, or ``(name, fingerprint)`` for one compiled with shared
    variables frozen in, or the training step's settings key.  ``seconds``: each name's compile
    time; ``announce``: say on stderr what compiles."""

    def __init__(self):
        super().__init__()
        self.seconds = {}
        self.announce = False

    def get_or_compile(self, name, build, exclude=(), frozen=()):
        """The compiled function ``name``, built by ``build() -> (inputs, outputs)`` at its first use;
        ``exclude``: graph optimisations left out of its compile.  ``frozen``: shared variables
        compiled in as constants of their present values, with what is computed from them alone
        (:func:`.constants.fold_shared`); the function is compiled again, replacing the old one,
        once any of them changes."""
        key = name
        if frozen:
            key = (name, fingerprint(frozen))
            for stale in [k for k in self if isinstance(k, tuple) and k[0] == name and k != key]:
                del self[stale]
        if key not in self:
            what = WHAT.get(name, name)
            with change_flags(compute_test_value="off", allow_gc=False), compiling(what, self.announce), compile_fixes():
                inputs, outputs = build()
                if frozen:
                    outputs = fold_shared(outputs, frozen)
                mode = theano.compile.mode.get_default_mode().excluding(*exclude) if exclude else None
                start = time.perf_counter()
                self[key] = theano.function(inputs, outputs, name=name, mode=mode)
                self.seconds[name] = time.perf_counter() - start
        return self[key]

    def drop_those_reading_T(self):
        """Forget every function but those of :data:`WITHOUT_T` (T or the preconditioner changed)."""
        for key in [k for k in self if k not in WITHOUT_T]:
            del self[key]
