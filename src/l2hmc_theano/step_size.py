"""The step size's adaptation in warm-up: dual averaging towards a target acceptance, the cap
where transitions diverge, and the final window's target once T is chosen."""
import numpy as np

__all__ = ["DualAveraging", "step_size_cap", "final_accept_target", "STABILITY_MARGIN", "FINAL_ACCEPT_SLACK",
           "FINAL_ACCEPT_MAX"]


class DualAveraging:
    """Nesterov dual averaging of log eps towards a target acceptance (Hoffman & Gelman 2014,
    Alg. 5, with their gamma, t0, kappa).  The shrinkage target is mu = log(reach * eps0):
    their reach of 10 for a first guess; a restart from an adapted step size uses 2."""

    def __init__(self, initial_step, target, gamma=0.05, t0=10.0, kappa=0.75, reach=10.0):
        self.target, self.gamma, self.t0, self.kappa = float(target), gamma, t0, kappa
        self.mu = np.log(reach * initial_step)
        self.log_step = np.log(initial_step)
        self.log_step_bar = np.log(initial_step)
        self.h_bar = 0.0
        self.t = 0

    def update(self, accept):
        """Take one acceptance statistic (a mean over the batch); returns the next step size."""
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - float(accept))
        self.log_step = self.mu - np.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t ** -self.kappa
        self.log_step_bar = eta * self.log_step + (1.0 - eta) * self.log_step_bar
        return self.step_size

    @property
    def step_size(self):
        """The step size to use next."""
        return float(np.exp(self.log_step))

    @property
    def final_step_size(self):
        """The averaged step size, to keep when adaptation ends."""
        return float(np.exp(self.log_step_bar))


#: The largest jittered step is this fraction of the smallest step seen to diverge.
STABILITY_MARGIN = 0.9
def step_size_cap(diverged_steps, jitter):
    """The step size whose largest jittered step, x (1 + ``jitter``), is :data:`STABILITY_MARGIN`
    x the smallest of ``diverged_steps`` (the actual step sizes of proposals that diverged);
    inf if there are none."""
    if len(diverged_steps) == 0:
        return np.inf
    return STABILITY_MARGIN * float(np.min(diverged_steps)) / (1.0 + jitter)


#: The final window's target acceptance lies within this far below ``target_accept``, and at most
#: :data:`FINAL_ACCEPT_MAX` (:func:`final_accept_target`).
FINAL_ACCEPT_SLACK = 0.15
FINAL_ACCEPT_MAX = 0.95


def final_accept_target(profile_accept, target_accept):
    """The mean acceptance the final window tunes the step size to, once T is chosen: the profile's at
    that T and step size, within [``target_accept`` - :data:`FINAL_ACCEPT_SLACK`,
    max(``target_accept``, :data:`FINAL_ACCEPT_MAX`)].  T was chosen for that step size: tuning the step
    size anew to ``target_accept`` at T would change the trajectory's length it was chosen for (on a
    50-d Gaussian T = 3 accepts 0.75 at the step size the profile ran; tuned to 0.8, the step size fell
    by 15% and the measured ESS per gradient by 25%)."""
    low = target_accept - FINAL_ACCEPT_SLACK
    return float(np.clip(profile_accept, low, max(target_accept, FINAL_ACCEPT_MAX)))
