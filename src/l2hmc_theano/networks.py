"""Auxiliary functions (S, Q, T) of the generalized leapfrog.

An *auxiliary-functions* object provides two methods on symbolic tensors, each
returning a triple ``(S, Q, T)`` of ``(batch, dim)`` tensors:

* ``v_terms(x, grad, tau)`` - for the momentum updates; inputs ``x`` and
  ``grad = dU/dx`` of shape ``(batch, dim)``, time encoding ``tau`` ``(batch, 2)``.
* ``x_terms(v, x_masked, tau)`` - for the position updates; inputs ``v`` and
  ``m * x`` (the components that stay fixed in this sub-update), ``tau``.

and a list ``params`` of the Theano shared variables it trains.

:class:`ZeroFunctions` makes the dynamics exactly HMC's leapfrog;
:class:`AuxiliaryNetworks` is the paper's architecture (Levy et al. 2018, App. C).
"""
import numpy as np

from ._theano import floatX, relu, theano, tt

__all__ = ["ZeroFunctions", "AuxiliaryNetworks", "MLP"]


class ZeroFunctions:
    """S = Q = T = 0: the generalized leapfrog reduces to HMC's leapfrog."""

    params = []

    def _zeros(self, like):
        z = tt.zeros_like(like)
        return z, z, z

    def v_terms(self, x, grad, tau):
        return self._zeros(x)

    def x_terms(self, v, x_masked, tau):
        return self._zeros(v)


def _shared(value, name):
    return theano.shared(np.asarray(value, dtype=floatX), name=name)


def _he_normal(rng, fan_in, fan_out, factor):
    """Weights ~ N(0, 2 * factor / fan_in), shape ``(fan_in, fan_out)``."""
    return rng.normal(0.0, np.sqrt(2.0 * factor / fan_in), size=(fan_in, fan_out))


class MLP:
    """One auxiliary network: three inputs -> (S, Q, T).

    h1 = relu(sum_k (in_k W_k + b_k)),  h2 = relu(h1 W + b),
    S = exp(c_S) * tanh(h2 W_S + b_S),  Q = exp(c_Q) * tanh(h2 W_Q + b_Q),
    T = h2 W_T + b_T.

    Inputs have widths ``in_dims`` (e.g. ``(dim, dim, 2)``); outputs ``(batch, dim)``.
    Biases start at zero; weights ~ N(0, 2f/fan_in) with f = 1 for the embeddings
    and the hidden layer and ``f = head_scale`` for the three heads, so an
    untrained network starts close to zero (close to HMC).
    """

    def __init__(self, name, in_dims, dim, hidden, rng, head_scale=1e-3, input_scales=None):
        if len(hidden) != 2 or min(hidden) < 1:
            raise ValueError(f"hidden must be two positive layer widths, got {hidden!r}.")
        h0, h1 = (int(h) for h in hidden)
        input_scales = input_scales or [1.0] * len(in_dims)
        self.name = name
        self.params = []

        def param(value, pname):
            p = _shared(value, f"{name}/{pname}")
            self.params.append(p)
            return p

        self.embed = [
            (param(_he_normal(rng, n, h0, f), f"embed{k}/W"), param(np.zeros(h0), f"embed{k}/b"))
            for k, (n, f) in enumerate(zip(in_dims, input_scales))
        ]
        self.hidden = (param(_he_normal(rng, h0, h1, 1.0), "hidden/W"), param(np.zeros(h1), "hidden/b"))
        self.heads = {
            key: (
                param(_he_normal(rng, h1, dim, head_scale), f"{key}/W"),
                param(np.zeros(dim), f"{key}/b"),
            )
            for key in ("S", "Q", "T")
        }
        self.log_scale_S = param(np.zeros(dim), "S/log_scale")
        self.log_scale_Q = param(np.zeros(dim), "Q/log_scale")

    def __call__(self, *inputs):
        h = sum(tt.dot(x, W) + b for x, (W, b) in zip(inputs, self.embed))
        h = relu(h)
        W, b = self.hidden
        h = relu(tt.dot(h, W) + b)
        lin = {key: tt.dot(h, W) + b for key, (W, b) in self.heads.items()}
        S = tt.exp(self.log_scale_S) * tt.tanh(lin["S"])
        Q = tt.exp(self.log_scale_Q) * tt.tanh(lin["Q"])
        return S, Q, lin["T"]

    def zero_heads(self):
        """Set the three heads' weights and biases to 0: S = Q = T = 0 from here on."""
        for W, b in self.heads.values():
            W.set_value(np.zeros_like(W.get_value()))
            b.set_value(np.zeros_like(b.get_value()))

    def heads_are_zero(self):
        """Whether the three heads' weights and biases are all 0 (then S = Q = T = 0 at any finite input)."""
        return not any(p.get_value(borrow=True).any() for head in self.heads.values() for p in head)


class AuxiliaryNetworks:
    """The paper's two networks: one for both v half-steps, one for both x-updates.

    Parameters
    ----------
    dim : dimension of the target.
    hidden : widths of the two hidden layers (paper: (10, 10); (100, 100) for 50-d).
    rng : ``numpy.random.Generator`` for the initial weights.
    head_scale : the factor f of the heads' initial weight variance 2f/fan_in.
    """

    def __init__(self, dim, hidden=(10, 10), rng=None, head_scale=1e-3):
        rng = rng if rng is not None else np.random.default_rng()
        self.dim = int(dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.v_net = MLP("vnet", (dim, dim, 2), dim, self.hidden, rng, head_scale)
        self.x_net = MLP("xnet", (dim, dim, 2), dim, self.hidden, rng, head_scale)
        self.params = self.v_net.params + self.x_net.params

    def v_terms(self, x, grad, tau):
        return self.v_net(x, grad, tau)

    def x_terms(self, v, x_masked, tau):
        return self.x_net(v, x_masked, tau)

    def zero_heads(self):
        """Make both networks output S = Q = T = 0, so the dynamics are HMC's leapfrog, without
        changing the compiled graphs (training can resume from there: tanh'(0) = 1)."""
        self.v_net.zero_heads()
        self.x_net.zero_heads()

    def heads_are_zero(self):
        """Whether both networks output S = Q = T = 0 (their heads are zero): HMC's leapfrog."""
        return self.v_net.heads_are_zero() and self.x_net.heads_are_zero()
