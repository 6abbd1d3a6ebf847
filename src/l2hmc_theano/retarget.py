"""A sampler on another energy of the same layout (e.g. a model's conditional in a compound step)."""
import copy

from .compile_cache import CompiledFunctions
from .energy import layout

__all__ = ["retarget"]


def retarget(sampler, energy):
    """``sampler`` on ``energy``, whose flat layout must be its target's.  Networks, masks and step
    size are shared, not copied; a model's non-centring (on or off, and its weights) is the
    sampler's.  The copy compiles its own functions."""
    if energy.dim != sampler.dim or layout(energy) != layout(sampler.energy_target):
        raise ValueError(
            "The sampler was built for variables "
            f"{', '.join(f'{n}{tuple(s)}' for n, s, _ in layout(sampler.energy_target))}, not "
            f"{', '.join(f'{n}{tuple(s)}' for n, s, _ in layout(energy))}."
        )
    mine = getattr(sampler.energy_target, "noncentring", None)
    if hasattr(energy, "with_noncentring"):
        energy = energy.with_noncentring(mine is not None)
        if mine is not None:
            energy.noncentring.set_weights(mine.weight_values())
    new = copy.copy(sampler)
    new.energy_target = energy
    new.functions = CompiledFunctions()
    return new
