"""A Pyro model's joint log-density over its latent sites, in unconstrained space.

Pyro's own machinery does the work: ``pyro.infer.mcmc.util.initialize_model``
finds the latent sites, their bijections to unconstrained space
(``transforms[name] = biject_to(support).inv``) and the potential energy
``potential_fn(params) = -(log p(params_constrained, data) + log|det J|)``, the
same function Pyro's HMC/NUTS use.

Batching: ``potential_fn`` cannot run under ``torch.func.vmap`` (Pyro's
enumeration handler reads ``tensor.data``). So the batched path re-evaluates
the same quantity with Pyro primitives (``poutine.condition`` +
``poutine.trace``, site log-probs with ``scale_and_mask``, Pyro's transforms and
their log-Jacobians) under ``vmap`` with validation switched off. At
construction this path is checked against ``potential_fn`` at two points; if it
raises or disagrees (e.g. models with enumerated discrete sites, or with
data-dependent Python control flow), ``log_prob`` falls back to a Python loop
over rows calling ``potential_fn``: about 1-2 ms per row for a small model on
a CPU, i.e. hundreds of times slower than the vmap path.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Optional

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer.mcmc.util import initialize_model
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from logz.targets.base import BaseTarget, check_input


class PyroTarget(BaseTarget):
    """Target from a Pyro model; see :func:`from_pyro`.

    Attributes:
        site_names: latent sites in model order; x is their concatenation.
        site_shapes: unconstrained shape of each site.
        constrained_shapes: shape of each site's value in the model.
        transforms: Pyro's constrained -> unconstrained bijection per site.
        vectorized: whether ``log_prob`` uses ``torch.func.vmap`` (else a row loop).
    """

    def __init__(self, model: Callable, model_args: tuple = (), model_kwargs: Optional[dict] = None,
                 log_Z: Optional[float] = None, name: Optional[str] = None, init_std: float = 1.0,
                 vectorize: Optional[bool] = None, seed: int = 0):
        self.model = model
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
            torch.manual_seed(seed)
            init, potential_fn, transforms, trace = initialize_model(
                model, self.model_args, self.model_kwargs)
        if not init:
            raise ValueError(f"Pyro model {getattr(model, '__name__', model)!r} has no continuous latent sites")
        self.site_names: list[str] = [k for k in trace.nodes if k in init]
        self.site_shapes = {k: tuple(init[k].shape) for k in self.site_names}
        self.constrained_shapes = {k: tuple(trace.nodes[k]["value"].shape) for k in self.site_names}
        self._sizes = [math.prod(self.site_shapes[k]) for k in self.site_names]
        self.transforms = transforms
        self._potential_fn = potential_fn
        self._init = torch.cat([init[k].detach().reshape(-1) for k in self.site_names])
        super().__init__(sum(self._sizes), log_Z=log_Z,
                         name=name or getattr(model, "__name__", "pyro_model"), init_std=init_std)
        self.vectorized = self._vmap_agrees(seed) if vectorize is None else bool(vectorize)

    # -- flattening -------------------------------------------------------------------------
    def _unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """Tensor[..., dim] -> {site: Tensor[..., *site_shape]} (unconstrained)."""
        parts = torch.split(x, self._sizes, dim=-1)
        lead = tuple(x.shape[:-1])
        return {k: p.reshape(lead + self.site_shapes[k]) for k, p in zip(self.site_names, parts)}

    def initial_point(self) -> Tensor:
        """Pyro's initial unconstrained point (init_to_uniform), Tensor[dim]."""
        return self._init.clone()

    def to_constrained(self, x: Tensor) -> dict[str, Tensor]:
        """Map unconstrained points to model values: Tensor[B, dim] -> {site: Tensor[B, *shape]}."""
        check_input(self, x)
        return {k: self.transforms[k].inv(v) for k, v in self._unflatten(x).items()}

    # -- densities --------------------------------------------------------------------------
    def _log_joint_row(self, flat: Tensor) -> Tensor:
        """log p(T⁻¹(u), data) + log|det J_{T⁻¹}(u)| for one unconstrained point u = flat, Tensor[dim]."""
        values, log_det = {}, flat.new_zeros(())
        for k, u in self._unflatten(flat).items():
            inv = self.transforms[k].inv
            c = inv(u)
            values[k] = c
            log_det = log_det + inv.log_abs_det_jacobian(u, c).sum()
        tr = poutine.trace(poutine.condition(self.model, data=values)).get_trace(
            *self.model_args, **self.model_kwargs)
        lp = log_det
        for site in tr.nodes.values():
            if site["type"] == "sample" and not site_is_subsample(site):
                lp = lp + scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"],
                                         site["mask"]).sum()
        return lp

    def _log_prob_vmap(self, x: Tensor) -> Tensor:
        with pyro.validation_enabled(False):
            return torch.func.vmap(self._log_joint_row)(x)

    def _log_prob_loop(self, x: Tensor) -> Tensor:
        return torch.stack([-self._potential_fn(self._unflatten(row)) for row in x])

    def _vmap_agrees(self, seed: int) -> bool:
        g = torch.Generator().manual_seed(seed)
        x0 = self._init.to(torch.get_default_dtype())
        x = torch.stack([x0, x0 + 0.3 * torch.randn(x0.shape, generator=g, dtype=x0.dtype)])
        try:
            with torch.no_grad():
                a = self._log_prob_vmap(x)
                b = self._log_prob_loop(x)
        except Exception:  # noqa: BLE001 - any failure means "use the loop"
            return False
        tol = math.sqrt(torch.finfo(b.dtype).eps)
        return a.shape == b.shape and bool(torch.allclose(a, b.to(a.dtype), rtol=tol, atol=tol))

    def log_prob(self, x: Tensor) -> Tensor:
        """Joint log-density in unconstrained space (log-Jacobian included).

        x: Tensor[B, dim] -> Tensor[B], in x's dtype. Differentiable in x.
        """
        check_input(self, x)
        if x.shape[0] == 0:
            return x.sum(-1)
        if self.vectorized:
            try:
                out = self._log_prob_vmap(x)
            except Exception as err:  # noqa: BLE001
                warnings.warn(f"target {self.name!r}: vmap evaluation failed ({err!r}); "
                              "falling back to a row-by-row loop", RuntimeWarning, stacklevel=2)
                self.vectorized = False
                out = self._log_prob_loop(x)
        else:
            out = self._log_prob_loop(x)
        return out.to(x.dtype)


def from_pyro(model: Callable, *args: Any, log_Z: Optional[float] = None, name: Optional[str] = None,
              init_std: float = 1.0, vectorize: Optional[bool] = None,
              model_kwargs: Optional[dict] = None, **kwargs: Any) -> PyroTarget:
    """Target for ``model(*args, **kwargs)``: latent sites flattened, unconstrained space.

    Observed data stay fixed through ``args``/``kwargs``. ``log_Z`` is None
    (unknown) unless passed. Keyword arguments named ``log_Z``, ``name``,
    ``init_std``, ``vectorize`` or ``model_kwargs`` are taken by this function;
    to pass a model keyword with one of those names, put it in ``model_kwargs``.
    ``vectorize``: None = use vmap if it reproduces Pyro's potential, True/False
    = force. Constructing the target runs the model a few times (with the
    global RNG forked, so the caller's random stream is unchanged).
    """
    mk = dict(model_kwargs or {})
    mk.update(kwargs)
    return PyroTarget(model, args, mk, log_Z=log_Z, name=name, init_std=init_std, vectorize=vectorize)
