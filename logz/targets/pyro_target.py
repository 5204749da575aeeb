"""A Pyro model's joint log-density over its latent sites, in unconstrained space.

Pyro's own machinery does the work: ``pyro.infer.mcmc.util.initialize_model``
finds the latent sites, their bijections to unconstrained space
(``transforms[name] = biject_to(support).inv``) and the potential energy
``potential_fn(params) = -(log p(params_constrained, data) + log|det J|)``, the
same function Pyro's HMC/NUTS use.

Batching, in order of preference (each checked against ``potential_fn`` at two
points before it is used, in the dtype it will run in):

1. ``"vmap"``: the same quantity re-evaluated with Pyro primitives
   (``poutine.condition`` + ``poutine.trace``, site log-probs with
   ``scale_and_mask``, Pyro's transforms and their log-Jacobians) under
   ``torch.func.vmap`` with validation off (``potential_fn`` itself cannot run
   under vmap: Pyro's enumeration handler reads ``tensor.data``).
2. ``"plate"``: one run of the model under a particle plate on the left of its
   own plates, as Pyro's vectorised ELBO batches particles (needs a model
   written to broadcast, which many are).
3. ``"loop"``: ``potential_fn`` row by row (e.g. enumerated discrete sites or
   data-dependent Python control flow). It is hundreds of times slower, so it
   is taken with a one-time ``RuntimeWarning`` stating the measured cost per row.

Dtypes: the caller's (the sampler's) dtype is the working dtype. The model's
floating-point data (tensors in ``args``/``kwargs``) are cast to it once and
cached, and the model runs with it as torch's default dtype, so tensors it
creates follow. The choice of batching is made per dtype: first in the model's
own dtype (the dtype of its data and of Pyro's initial trace) at construction,
then lazily for any other.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Any, Callable, Iterator, Optional

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer.mcmc.util import initialize_model
from pyro.poutine.util import site_is_subsample
from torch import Tensor

from logz.targets.base import BaseTarget, check_input

MODES = ("vmap", "plate", "loop")
"""Ways to evaluate a batch, fastest first (see the module docstring)."""

_PARTICLE_PLATE = "_logz_particles"


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """torch's default dtype set to ``dtype`` inside the block (tensors a model creates follow)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _cast(value: Any, dtype: torch.dtype) -> Any:
    """Floating tensors in value (and in tuples, lists, dicts of them) cast to dtype."""
    if isinstance(value, Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype) for k, v in value.items()}
    return value


def _floating_dtype(value: Any) -> Optional[torch.dtype]:
    """The dtype of the first floating tensor in value (tuples, lists, dicts searched), or None."""
    if isinstance(value, Tensor):
        return value.dtype if value.is_floating_point() else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    for v in items:
        found = _floating_dtype(v)
        if found is not None:
            return found
    return None


class PyroTarget(BaseTarget):
    """Target from a Pyro model; see :func:`from_pyro`.

    Attributes:
        site_names: latent sites in model order; x is their concatenation.
        site_shapes: unconstrained shape of each site.
        constrained_shapes: shape of each site's value in the model.
        transforms: Pyro's constrained -> unconstrained bijection per site.
        model_dtype: the dtype of the model's data (else torch's default): the model runs
            with it as the default dtype when Pyro's own potential is evaluated.
        modes: the batching chosen per dtype so far ("vmap", "plate" or "loop").
    """

    def __init__(self, model: Callable, model_args: tuple = (), model_kwargs: Optional[dict] = None,
                 log_Z: Optional[float] = None, name: Optional[str] = None, init_std: float = 1.0,
                 vectorize: Optional[bool] = None, seed: int = 0):
        self.model = model
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        # the model's own dtype: its data's; tensors it creates follow (torch's default dtype)
        data_dtype = _floating_dtype((self.model_args, self.model_kwargs))
        self.model_dtype = (data_dtype if data_dtype in (torch.float32, torch.float64)
                            else torch.get_default_dtype())
        with torch.random.fork_rng(devices=[]), _default_dtype(self.model_dtype):
            torch.manual_seed(seed)  # (and leave the caller's global RNG untouched)
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
        self._batch_dims = {k: len(trace.nodes[k]["fn"].batch_shape) for k in self.site_names}
        self._max_plate_nesting = max(
            (-f.dim for site in trace.nodes.values() if site["type"] == "sample"
             for f in site["cond_indep_stack"] if f.vectorized and f.dim is not None), default=0)
        super().__init__(sum(self._sizes), log_Z=log_Z,
                         name=name or getattr(model, "__name__", "pyro_model"), init_std=init_std)
        self._seed = seed
        self._forced = None if vectorize is None else ("vmap" if vectorize else "loop")
        self._args_cache: dict[torch.dtype, tuple[tuple, dict]] = {}
        self.modes: dict[torch.dtype, str] = {}
        self._mode(self.model_dtype)

    @property
    def vectorized(self) -> bool:
        """Whether a batch in the model's own dtype is evaluated at once (vmap or plate)."""
        return self._mode(self.model_dtype) != "loop"

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

    def _args(self, dtype: torch.dtype) -> tuple[tuple, dict]:
        """The model's args and kwargs with their floating tensors in ``dtype`` (cast once)."""
        if dtype not in self._args_cache:
            self._args_cache[dtype] = (_cast(self.model_args, dtype), _cast(self.model_kwargs, dtype))
        return self._args_cache[dtype]

    # -- densities --------------------------------------------------------------------------
    def _constrain(self, x: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """Constrained values per site and the summed log|det J| over all but x's leading dims."""
        values, log_det = {}, x.new_zeros(x.shape[:-1])
        for k, u in self._unflatten(x).items():
            inv = self.transforms[k].inv
            c = inv(u)
            values[k] = c
            ld = inv.log_abs_det_jacobian(u, c)
            log_det = log_det + ld.reshape(x.shape[:-1] + (-1,)).sum(-1)
        return values, log_det

    def _log_joint_row(self, flat: Tensor) -> Tensor:
        """log p(T⁻¹(u), data) + log|det J_{T⁻¹}(u)| for one unconstrained point u = flat, Tensor[dim]."""
        values, lp = self._constrain(flat)
        args, kwargs = self._args(flat.dtype)
        tr = poutine.trace(poutine.condition(self.model, data=values)).get_trace(*args, **kwargs)
        for site in tr.nodes.values():
            if site["type"] == "sample" and not site_is_subsample(site):
                lp = lp + scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"],
                                         site["mask"]).sum()
        return lp

    def _log_prob_vmap(self, x: Tensor) -> Tensor:
        with pyro.validation_enabled(False):
            return torch.func.vmap(self._log_joint_row)(x)

    def _log_prob_plate(self, x: Tensor) -> Tensor:
        """One model run with the batch as a particle plate left of the model's own plates."""
        B, M = x.shape[0], self._max_plate_nesting
        values, lp = self._constrain(x)
        args, kwargs = self._args(x.dtype)

        def particles(*a, **kw):
            with pyro.plate(_PARTICLE_PLATE, B, dim=-M - 1):
                return self.model(*a, **kw)

        # a site's value [B, *batch, *event] becomes [B, 1.., *batch, *event]: M dims between
        shaped = {k: c.reshape((B,) + (1,) * (M - self._batch_dims[k]) + self.constrained_shapes[k])
                  for k, c in values.items()}
        with pyro.validation_enabled(False):
            tr = poutine.trace(poutine.condition(particles, data=shaped)).get_trace(*args, **kwargs)
        for site in tr.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            term = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
            if term.ndim > M + 1:
                raise ValueError(f"site {site['name']!r} has batch dims left of the particle plate")
            if term.ndim == M + 1 and term.shape[0] == B:
                lp = lp + term.reshape(B, -1).sum(-1)
            elif term.ndim == M + 1 and term.shape[0] != 1:
                raise ValueError(f"site {site['name']!r}: log-prob shape {tuple(term.shape)} does not "
                                 f"broadcast over {B} particles")
            else:
                lp = lp + term.sum()
        return lp

    def _log_prob_loop(self, x: Tensor) -> Tensor:
        """Pyro's own potential, row by row, in the model's dtype (output in x's dtype)."""
        rows = x.to(self.model_dtype)
        with _default_dtype(self.model_dtype):
            out = torch.stack([-self._potential_fn(self._unflatten(row)) for row in rows])
        return out.to(x.dtype)

    def _evaluate(self, mode: str, x: Tensor) -> Tensor:
        if mode == "loop":
            return self._log_prob_loop(x)
        with _default_dtype(x.dtype):
            return self._log_prob_vmap(x) if mode == "vmap" else self._log_prob_plate(x)

    def _mode(self, dtype: torch.dtype) -> str:
        """The fastest batching that reproduces Pyro's potential in ``dtype`` (decided once)."""
        if dtype in self.modes:
            return self.modes[dtype]
        if self._forced:
            self.modes[dtype] = self._forced
            return self._forced
        g = torch.Generator().manual_seed(self._seed)
        x0 = self._init.to(self.model_dtype)
        x = torch.stack([x0, x0 + 0.3 * torch.randn(x0.shape, generator=g, dtype=x0.dtype)])
        tol = math.sqrt(torch.finfo(torch.float32 if torch.float32 in (dtype, self.model_dtype)
                                    else dtype).eps)
        start = time.perf_counter()
        with torch.no_grad():
            ref = self._log_prob_loop(x)
        per_row = (time.perf_counter() - start) / x.shape[0]
        failures = []
        for mode in MODES[:-1]:
            try:
                with torch.no_grad():
                    out = self._evaluate(mode, x.to(dtype)).to(ref.dtype)
            except Exception as err:  # noqa: BLE001 - a model this mode cannot run: try the next
                failures.append(f"{mode}: {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}")
                continue
            scale = 1.0 + ref.abs()
            if out.shape == ref.shape and bool(((out - ref).abs() <= tol * scale).all()):
                self.modes[dtype] = mode
                return mode
            failures.append(f"{mode}: disagrees with Pyro's potential ({out.tolist()} vs {ref.tolist()})")
        self.modes[dtype] = "loop"
        warnings.warn(
                f"target {self.name!r}: this Pyro model cannot be batched in {dtype} "
                f"({'; '.join(failures)}); evaluating it row by row at a measured {1e3 * per_row:.2f} ms "
                f"per row ({2000 * per_row:.1f} s per 2000 rows). Write the model so it broadcasts over "
                f"a leading batch dimension (as for Pyro's vectorised ELBO) to batch it.",
                RuntimeWarning, stacklevel=3)
        return "loop"

    def log_prob(self, x: Tensor) -> Tensor:
        """Joint log-density in unconstrained space (log-Jacobian included).

        x: Tensor[B, dim] -> Tensor[B], in x's dtype. Differentiable in x.
        """
        check_input(self, x)
        if x.shape[0] == 0:
            return x.sum(-1)
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        mode = self._mode(x.dtype)
        try:
            out = self._evaluate(mode, x)
        except Exception as err:  # noqa: BLE001 - the batched path failed on these inputs
            if mode == "loop":
                raise
            warnings.warn(f"target {self.name!r}: {mode} evaluation failed ({err!r}); "
                          "falling back to a row-by-row loop", RuntimeWarning, stacklevel=2)
            self.modes[x.dtype] = "loop"
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
    ``vectorize``: None = the fastest batching that reproduces Pyro's potential
    (vmap, else a particle plate, else a row loop with a warning); True = vmap
    without the check; False = the row loop. The model runs in whatever dtype
    ``log_prob`` is called with (its data are cast). Constructing the target runs
    the model a few times (with the global RNG forked, so the caller's random
    stream is unchanged).
    """
    mk = dict(model_kwargs or {})
    mk.update(kwargs)
    return PyroTarget(model, args, mk, log_Z=log_Z, name=name, init_std=init_std, vectorize=vectorize)
