"""Checks of user input: each returns the value converted, or raises a ``ValueError`` naming it."""
import numbers

import numpy as np

from ._theano import floatX

__all__ = ["check_count", "check_positive", "check_non_negative", "check_fraction", "check_hidden", "as_batch",
           "as_direction", "check_step_inputs"]


def check_count(value, name):
    """``value`` as an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def check_positive(value, name):
    """``value`` as a finite float > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
    return value


def check_non_negative(value, name):
    """``value`` as a finite float >= 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return value


def check_fraction(value, name, zero_allowed=False):
    """``value`` as a float in (0, 1), or in [0, 1) with ``zero_allowed``."""
    interval = "[0, 1)" if zero_allowed else "(0, 1)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = np.nan
    if not (0.0 <= number < 1.0 and (zero_allowed or number > 0.0)):
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}.")
    return number


def check_hidden(hidden):
    """``hidden`` as two positive integer layer widths."""
    try:
        widths = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        widths = ()
    if len(widths) != 2 or min(widths) < 1 or any(float(h) != int(h) for h in hidden):
        raise ValueError(f"hidden must be two positive integer layer widths, e.g. (10, 10); got {hidden!r}.")
    return widths


def as_batch(array, dim, name):
    """``array`` as a floatX ``(batch, dim)`` matrix."""
    array = np.asarray(array, dtype=floatX)
    if array.ndim != 2 or array.shape[1] != dim:
        hint = " For one point use x[None, :]." if array.shape == (dim,) else ""
        raise ValueError(
            f"{name} must have shape (batch, {dim}) (batch of chains x dimension of the "
            f"target), got shape {array.shape}.{hint}"
        )
    return array


def as_direction(direction, batch):
    """``direction`` (+1 or -1, a scalar or one per chain) as a floatX ``(batch,)`` vector."""
    d = np.asarray(direction, dtype=floatX)
    if d.ndim == 0:
        d = np.full(batch, d, dtype=floatX)
    if d.shape != (batch,) or not np.all((d == 1) | (d == -1)):
        raise ValueError(
            f"direction must be +1 or -1, as a scalar or one per chain (shape ({batch},)); "
            f"got {np.asarray(direction)!r}."
        )
    return d


def check_step_inputs(args, dim, what):
    """Raise a ``ValueError`` naming ``what`` unless an MH step's inputs ``args`` = ``(x, v, direction,
    log_u, step_scale, potential, grad)`` (arrays) have x, v and grad of shape ``(batch, dim)`` and the
    others of shape ``(batch,)``; returns ``batch``."""
    x, v, direction, log_u, step_scale, potential, grad = args
    batch = x.shape[0] if x.ndim == 2 else -1
    if (any(a.shape != (batch, dim) for a in (x, v, grad))
            or any(a.shape != (batch,) for a in (direction, log_u, step_scale, potential))):
        raise ValueError(
            f"{what} takes x, v and grad of shape (batch, {dim}) and direction, log_u, step_scale and "
            f"potential of shape (batch,); got {', '.join(str(a.shape) for a in args)}.")
    return batch
