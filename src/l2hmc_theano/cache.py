"""A cache of trained samplers: the same model with the same settings loads what the last run trained.

An entry is a sampler saved by :mod:`l2hmc_theano.persistence` (``.npz`` data, no pickle,
with its training history) at ``<cache dir>/<key>.npz``.  The key is a digest of
everything the trained sampler depends on: this package's version and source, Theano's
and PyMC3's versions, ``floatX``, the flat layout, the non-centred groups, the logp
graph's structure, the values of every constant and shared variable it reads (observed
data, ``pm.Data``) and every constructor and training argument (defaults filled in).  A
changed model or data set is another key, so it never loads a stale sampler; and the
load itself checks the energy at stored probe points.  Only :class:`ModelEnergy` targets
with plain-valued settings are cached.

The directory is ``$L2HMC_THEANO_CACHE_DIR``, else ``$XDG_CACHE_HOME/l2hmc_theano``, else
``~/.cache/l2hmc_theano``.  ``L2HMC_THEANO_CACHE=off`` (or ``0``, ``false``, ``no``)
turns the cache off everywhere; ``cache=False`` per call.
"""
import functools
import hashlib
import importlib.metadata
import inspect
import json
import math
import numbers
import os
import pathlib
import re
import sys
import warnings

import numpy as np

from ._pymc3 import VERSION as PYMC3_VERSION
from ._theano import floatX, theano
from .energy import layout
from .pymc3_energy import ModelEnergy
from .loading import load
from .persistence import save
from .sampler import L2HMCSampler
from .tuning import warn_training_problems

__all__ = ["cache_dir", "enabled", "settings_of", "cache_key", "lookup", "store", "clear_cache", "trained_sampler"]

#: Changes whenever what a key covers or what an entry holds changes.
CACHE_FORMAT = 1
_OFF = ("off", "0", "false", "no")
_ENTRY = re.compile(r"^[0-9a-f]{64}\.npz$")
#: Training arguments that do not change what is trained.
_NOT_IN_KEY = ("progressbar",)
_warned_write = False


def cache_dir():
    """The cache directory (a ``pathlib.Path``; it need not exist yet)."""
    explicit = os.environ.get("L2HMC_THEANO_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path("~/.cache").expanduser()
    return base / "l2hmc_theano"


def enabled():
    """False when ``L2HMC_THEANO_CACHE`` is ``off``, ``0``, ``false`` or ``no``, else True."""
    return os.environ.get("L2HMC_THEANO_CACHE", "").strip().lower() not in _OFF


def _plain(value):
    """``value`` as JSON-able plain data (tuples as lists, NumPy scalars as Python ones), or
    raise ``TypeError`` for anything else (objects, dicts, NaN)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"not a plain value: {type(value).__name__}")


def _bound(function, kwargs, skip):
    """``kwargs`` bound to ``function``'s keyword parameters, defaults filled in, ``skip`` left out."""
    bound = inspect.signature(function).bind_partial(**kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in skip}


def settings_of(init_kwargs, train_kwargs):
    """The canonical settings of a training run: ``{"init": {...}, "train": {...}}`` with every
    :class:`L2HMCSampler` constructor and :meth:`~L2HMCSampler.train` argument (defaults filled
    in, plain JSON values), or None when one is not a plain value (a ``networks`` object, a
    ``Preconditioner`` instance) or not an argument at all: such runs are not cached."""
    try:
        return {"init": {k: _plain(v) for k, v in _bound(L2HMCSampler.__init__, init_kwargs, ("self", "model")).items()},
                "train": {k: _plain(v) for k, v in _bound(L2HMCSampler.train, train_kwargs, ("self",) + _NOT_IN_KEY)
                          .items()}}
    except TypeError:
        return None


@functools.lru_cache(maxsize=None)
def _code_digest():
    """A digest of this package's version, its ``.py`` sources, and Theano's and PyMC3's versions."""
    try:
        version = importlib.metadata.version("l2hmc_theano")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    digest = hashlib.sha256(f"{version}|{theano.__version__}|{PYMC3_VERSION}|{floatX}".encode())
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _hash_value(digest, value):
    """Feed an array's dtype, shape and bytes to ``digest``."""
    array = np.ascontiguousarray(value)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes() if array.dtype.kind != "O" else repr(array.tolist()).encode())


def _hash_graph_data(digest, energy):
    """Feed ``digest`` the values of every constant and shared variable ``energy``'s logp graph
    reads, in graph order (the non-centring's weights left out: they are the sampler's, trained)."""
    own = set(energy.noncentring.weights.values()) if energy.noncentring is not None else set()
    for var in theano.graph.basic.graph_inputs([energy._logp]):
        if isinstance(var, theano.graph.basic.Constant):
            digest.update(f"constant {var.type}".encode())
            _hash_value(digest, var.data)
        elif isinstance(var, theano.compile.SharedVariable) and var not in own:
            digest.update(f"shared {var.name} {var.type}".encode())
            _hash_value(digest, var.get_value(borrow=True))


def cache_key(energy, settings):
    """The cache key (64 hex digits) of training ``energy`` with ``settings``
    (:func:`settings_of`), or None when it is not cached: ``energy`` is not a
    :class:`~l2hmc_theano.pymc3_energy.ModelEnergy`, or ``settings`` is None."""
    if not isinstance(energy, ModelEnergy) or settings is None:
        return None
    header = {
        "cache_format": CACHE_FORMAT, "code": _code_digest(), "layout": layout(energy),
        "batching": energy.batching, "noncentre": energy.noncentre,
        "noncentred": None if energy.noncentring is None else list(energy.noncentring.names), "settings": settings,
    }
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(theano.printing.debugprint(energy._logp, file="str", ids="").encode())
    _hash_graph_data(digest, energy)
    return digest.hexdigest()


def _entry(key):
    return cache_dir() / f"{key}.npz"


def _load_entry(energy, key):
    """The sampler stored under ``key`` for ``energy``, or None (no entry, or a damaged one:
    then a warning).  A failed load leaves ``energy``'s non-centring weights as they were."""
    path = _entry(key)
    if not path.is_file():
        return None
    noncentring = getattr(energy, "noncentring", None)
    weights = None if noncentring is None else noncentring.weight_values()
    try:
        sampler = load(path, model=energy)
    except (ValueError, OSError, KeyError, TypeError) as err:
        if weights is not None:
            noncentring.set_weights(weights)
        warnings.warn(f"The cached sampler {str(path)!r} could not be loaded ({err}); training afresh, and it "
                      "will be overwritten.")
        return None
    print(f"L2HMC: loaded the sampler trained on this model last time from {path} (cache=False or "
          "L2HMC_THEANO_CACHE=off to train afresh)", file=sys.stderr, flush=True)
    warn_training_problems(sampler.training_problems)
    return sampler


def _store_entry(sampler, key):
    """Save ``sampler`` under ``key``; returns the path, or None when that failed (a warning,
    once per process): a cache that cannot be written never stops a run."""
    global _warned_write
    path = _entry(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return save(sampler, path, history=True)
    except (OSError, ValueError, TypeError) as err:
        if not _warned_write:
            _warned_write = True
            warnings.warn(f"Could not write the trained sampler to the cache {str(cache_dir())!r} ({err}); "
                          "going on without it (set L2HMC_THEANO_CACHE_DIR to a writable directory, or "
                          "L2HMC_THEANO_CACHE=off).")
        return None


def lookup(energy, settings):
    """The cached sampler trained on ``energy`` with ``settings`` (:func:`settings_of`), loaded,
    or None (not cached, cache off, or a damaged entry: then a ``UserWarning``)."""
    key = cache_key(energy, settings) if enabled() else None
    return None if key is None else _load_entry(energy, key)


def store(sampler, energy, settings):
    """Cache ``sampler``, trained on ``energy`` with ``settings``; returns the entry's path, or
    None (not cacheable, cache off, or the write failed: then a warning, once).  Call it with
    the ``energy`` as it was before training (its key must not see what training changed)."""
    key = cache_key(energy, settings) if enabled() else None
    return None if key is None else _store_entry(sampler, key)


def clear_cache():
    """Remove every cached sampler (and any left-over temporary file); returns how many
    samplers were removed.  Only files the cache writes are touched."""
    directory = cache_dir()
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.iterdir():
        if _ENTRY.match(path.name):
            path.unlink()
            removed += 1
        elif path.name.startswith(".l2hmc-") and path.name.endswith(".tmp"):
            path.unlink()
    return removed


def trained_sampler(energy, init_kwargs, train_kwargs, cache=True):
    """A trained :class:`L2HMCSampler` for ``energy``: the cached one for these arguments, else
    ``L2HMCSampler(energy, **init_kwargs)`` trained with ``train(**train_kwargs)`` and then cached
    (unless training was interrupted).  ``cache=False`` (or ``L2HMC_THEANO_CACHE=off``)
    neither reads nor writes the cache."""
    key = None
    if cache and enabled():
        key = cache_key(energy, settings_of(init_kwargs, train_kwargs))
    sampler = None if key is None else _load_entry(energy, key)
    if sampler is None:
        sampler = L2HMCSampler(energy, **init_kwargs)
        history = sampler.train(**train_kwargs)
        if key is not None and not history.get("interrupted"):
            _store_entry(sampler, key)
    return sampler
