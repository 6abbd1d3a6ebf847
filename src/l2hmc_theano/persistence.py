"""Save and load a trained sampler as data: one ``.npz`` of arrays plus JSON text.

Nothing in the file is code: it is read with ``numpy.load(allow_pickle=False)``,
so a sampler from an untrusted source is safe to load.  The file holds the
network weights, masks, log step size, the settings, the flat-vector layout
(variable names, shapes, dtypes) and a fingerprint of the target: energies at a
few stored probe points, which the target given to :func:`l2hmc_theano.load` must reproduce; and the
final training chains (with ``save(..., history=True)`` the whole training history).
Writes go to a temporary file in the same directory, renamed into place.
"""
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from ._theano import floatX
from .energy import layout
from .networks import AuxiliaryNetworks, ZeroFunctions

__all__ = ["save", "read", "restore", "sampler_arguments", "FORMAT"]

FORMAT = "l2hmc_theano.sampler/1"
_N_PROBES = 4
_META_KEYS = ("networks", "n_steps", "hidden", "seed", "dim", "layout")
_ARRAY_KEYS = ("masks", "log_step_size", "probe_x", "probe_energy")
# What a truncated or corrupt .npz can raise while it is opened or a member is read.
_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile, zlib.error)


def _probe_points(sampler):
    start = getattr(sampler.energy_target, "start_array", None)
    base = start() if start is not None else np.zeros(sampler.dim)
    rng = np.random.default_rng(20180215)
    return (base + 0.5 * rng.standard_normal((_N_PROBES, sampler.dim))).astype(floatX)


def _noncentring(sampler):
    return getattr(sampler.energy_target, "noncentring", None)


def _noncentred(sampler):
    """Names of the target's non-centred variables (a list), or None."""
    noncentring = _noncentring(sampler)
    return None if noncentring is None else noncentring.names


def _weights(sampler):
    noncentring = _noncentring(sampler)
    return {} if noncentring is None else noncentring.weight_values()


def _set_noncentring(path, meta, arrays, sampler):
    """Give the loaded sampler's model the saved non-centring: none for a file saved without
    (or before there was any), else the same variables with the saved weights."""
    saved = meta.get("noncentred")
    target = sampler.energy_target
    if not hasattr(target, "with_noncentring"):
        return
    target = sampler.energy_target = target.with_noncentring(bool(saved))
    here = _noncentred(sampler)
    if saved and here != saved:
        raise ValueError(f"{os.fspath(path)!r} was trained with non-centred variables {', '.join(saved)}, but this "
                         f"model has {', '.join(here or []) or 'none'} to non-centre. Load it with the model it was "
                         "trained on.")
    if saved:
        try:
            target.noncentring.set_weights({name: arrays["noncentring/" + name] for name in saved})
        except (KeyError, ValueError) as err:
            raise ValueError(f"{os.fspath(path)!r}: its non-centring is missing or damaged ({err}).") from None


def _network_kind(sampler):
    if isinstance(sampler.networks, ZeroFunctions):
        return "zero"
    if isinstance(sampler.networks, AuxiliaryNetworks):
        return "paper"
    raise TypeError(
        "Only samplers with the built-in networks (or zero_network=True) can be saved; for custom "
        "networks save their parameters yourself (sampler.networks.params are Theano shared variables)."
    )


def save(sampler, path, history=False):
    """Write ``sampler`` to ``path`` (an ``.npz`` file) atomically.  Raises ``ValueError``, and
    writes nothing, if a parameter (network weight or log step size) is NaN or infinite.
    ``history``: also its whole training history (per-iteration arrays, seconds, back-offs),
    not only the final chains (the cache of :mod:`l2hmc_theano.cache` keeps it)."""
    path = os.fspath(path)
    kind = _network_kind(sampler)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save the sampler: directory {directory!r} does not exist.")
    probes = _probe_points(sampler)
    meta = {
        "format": FORMAT,
        "networks": kind,
        "n_steps": sampler.n_steps,
        "hidden": list(sampler.hidden),
        "seed": sampler.seed,
        "dim": sampler.dim,
        "layout": layout(sampler.energy_target),
        "target": type(sampler.energy_target).__name__,
        "history_length": 0 if sampler.history is None else int(len(sampler.history.get("loss", ()))),
        "preconditioner": None if sampler.preconditioner is None else sampler.preconditioner.kind,
        "warmup": sampler.warmup_info,
        "selection": sampler.selection,
        "step_jitter": sampler.step_jitter,
        "noncentred": _noncentred(sampler),
        "training_problems": list(sampler.training_problems),
        "setup": sampler.setup,
    }
    history_arrays = {}
    if history and sampler.history is not None:
        meta["history"], history_arrays = _history_parts(sampler.history)
    arrays = {
        **history_arrays,
        "meta": np.array(json.dumps(meta)),
        "masks": sampler.masks,
        "log_step_size": sampler.log_step_size.get_value(),
        "probe_x": probes,
        "probe_energy": _probe_energy(sampler, probes),
    }
    if sampler.preconditioner is not None:
        for name, a in sampler.preconditioner.arrays().items():
            arrays["precond/" + name] = a
    for name, h in _weights(sampler).items():
        arrays["noncentring/" + name] = h
    chains = None if sampler.history is None else sampler.history.get("chains")
    if chains is not None:
        arrays["chains"] = np.asarray(chains)
    for p in sampler.networks.params:
        arrays["param/" + p.name] = p.get_value()
    bad = _non_finite(arrays)
    if bad:
        raise ValueError(f"Cannot save the sampler: {bad} holds NaN or inf (a failed training run?). "
                         "Nothing was written.")
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def _history_parts(history):
    """A training history but its final chains, in two parts: its JSON-able items (seconds,
    stopped_early, back-offs, ...) as a dict, and its per-iteration arrays as a dict of
    ``history/<name>`` arrays.  Items that are neither are left out."""
    items, arrays = {}, {}
    for name, value in history.items():
        if name == "chains":
            continue
        if isinstance(value, np.ndarray):
            arrays["history/" + name] = value
            continue
        try:
            items[name] = json.loads(json.dumps(value, default=_json_scalar))
        except (TypeError, ValueError):
            pass
    return items, arrays


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _history_of(meta, arrays):
    """The saved training history: the final chains, and, when it was saved whole
    (``save(..., history=True)``), its other items and per-iteration arrays."""
    history = dict(meta.get("history") or {})
    history.update((key[8:], value) for key, value in arrays.items() if key.startswith("history/"))
    history["chains"] = arrays["chains"].astype(floatX)
    return history


def atomic_write(path, write):
    """Write the file ``path`` whole or not at all: ``write(f)`` fills a temporary binary
    file in the same folder, which then replaces ``path``.  It gets the permissions
    ``open()`` would give (not mkstemp's 0600); on any error nothing is left behind."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".l2hmc-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _non_finite(arrays):
    """The first float array (other than probe_energy, which may hold inf, and the training
    history's, whose loss may) with a NaN or inf in it, named for a message, or None."""
    for key, a in arrays.items():
        if key != "probe_energy" and not key.startswith("history/") and a.dtype.kind in "fc" \
                and not np.all(np.isfinite(a)):
            return f"network parameter {key[6:]!r}" if key.startswith("param/") else repr(key)
    return None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read(path):
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"No saved sampler at {os.fspath(path)!r}.") from None
    except _READ_ERRORS as err:
        raise ValueError(f"{os.fspath(path)!r} is not a saved l2hmc_theano sampler, or it is truncated or "
                         f"corrupt ({type(err).__name__}: {err}).") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, json.JSONDecodeError):
        meta = {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a saved l2hmc_theano sampler (format {FORMAT}).")
    missing = [k for k in _META_KEYS if k not in meta] + [k for k in _ARRAY_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{os.fspath(path)!r} is not a saved l2hmc_theano sampler: it has no "
                         f"{', '.join(missing)}.")
    bad = _non_finite(arrays)
    if bad:
        raise ValueError(f"{os.fspath(path)!r}: {bad} holds NaN or inf; the file is damaged or was saved "
                         "from a failed training run.")
    return meta, arrays


def sampler_arguments(meta, model):
    """The constructor arguments of the sampler a file's ``meta`` (:func:`read`) describes, for
    ``model`` (a PyMC3 model, or the plain energy function the sampler was trained on)."""
    return dict(n_steps=meta["n_steps"], hidden=meta["hidden"], seed=meta["seed"],
                zero_network=meta["networks"] == "zero", dim=meta["dim"] if callable(model) else None,
                preconditioner=meta.get("preconditioner"), step_jitter=meta.get("step_jitter", 0.0))


def restore(sampler, path, meta, arrays):
    """Set a sampler built from :func:`sampler_arguments` to the file's state: its preconditioner,
    non-centring, networks, masks and step size, after checking that the sampler's target is the
    file's (its layout, then its energy at the probe points).  A file saved before samplers had a
    preconditioner and step-size jitter gives a sampler without them (the dynamics it was trained
    with).  Raises ``ValueError`` naming the file and what differs.  Returns ``sampler``."""
    kind = meta.get("preconditioner")
    _check_same_layout(path, meta, sampler)  # first: a model of another size is the model's fault, not the file's
    if kind is not None:
        try:
            names = ("mu", "factor") + (("basis", "eigenvalues") if kind == "lowrank" else ())
            sampler.preconditioner.set(**{name: arrays["precond/" + name] for name in names})
        except (KeyError, ValueError) as err:
            raise ValueError(f"{os.fspath(path)!r}: its {kind} preconditioner is missing or damaged ({err}).") from None
    _set_noncentring(path, meta, arrays, sampler)
    sampler.warmup_info = meta.get("warmup")
    sampler.selection = meta.get("selection")
    sampler.setup = meta.get("setup")
    sampler.training_problems = [str(p) for p in meta.get("training_problems") or []]
    if "chains" in arrays:
        if arrays["chains"].ndim != 2 or arrays["chains"].shape[1] != sampler.dim:
            raise ValueError(f"{os.fspath(path)!r}: its training chains have shape {arrays['chains'].shape}, "
                             f"expected (n, {sampler.dim}).")
        sampler.history = _history_of(meta, arrays)
    _check_same_target(path, meta, arrays, sampler)
    if arrays["masks"].shape != sampler.masks.shape:
        raise ValueError(f"{os.fspath(path)!r}: masks have shape {arrays['masks'].shape}, "
                         f"expected {sampler.masks.shape}.")
    sampler.masks = arrays["masks"].astype(floatX)
    sampler.log_step_size.set_value(np.asarray(arrays["log_step_size"], dtype=floatX))
    for p in sampler.networks.params:
        key = "param/" + p.name
        if key not in arrays or arrays[key].shape != p.get_value().shape:
            raise ValueError(f"{os.fspath(path)!r}: network parameter {p.name!r} is missing or has the "
                             "wrong shape.")
        p.set_value(arrays[key].astype(floatX))
    sampler.loaded_from = os.fspath(path)
    return sampler


def _probe_energy(sampler, x):
    """U at the probe points ``x`` ``(n, dim)``, from the energy-and-gradient function that
    sampling compiles anyway (one compile fewer on a load than ``sampler.energy``)."""
    return sampler.energy_and_grad(np.asarray(x, dtype=floatX))[0]


def _check_same_layout(path, meta, sampler):
    """The target's variables, shapes and size against the file's."""
    saved, here = meta["layout"], layout(sampler.energy_target)
    if saved != here:
        raise ValueError(
            f"{os.fspath(path)!r} was trained on a model with variables "
            f"{', '.join(f'{n}{tuple(s)}' for n, s, _ in saved)} ({meta['dim']} dimensions); this model has "
            f"{', '.join(f'{n}{tuple(s)}' for n, s, _ in here)} ({sampler.dim}). Load it with the model it was "
            "trained on, or train a sampler for this one.")


def _check_same_target(path, meta, arrays, sampler):
    """The target's energy at the file's probe points (after the layout: :func:`_check_same_layout`)."""
    energy = _probe_energy(sampler, arrays["probe_x"])
    expected = arrays["probe_energy"]
    same = np.isclose(energy, expected, rtol=1e-7, atol=1e-9) | (~np.isfinite(energy) & (energy == expected))
    if not np.all(same):
        raise ValueError(
            f"{os.fspath(path)!r} was trained on a different model: its logp differs at the saved probe "
            f"points (saved energies {np.array2string(expected, precision=4)}, this model "
            f"{np.array2string(energy, precision=4)}). Load it with the model it was trained on."
        )
