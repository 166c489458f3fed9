"""The NUTS backends behind ``fit.sample``: BlackJAX on JAX (the default) and nutpie on numba.

Measured on 2 cores (``scripts/benchmark.py --routes``, issue 11): from empty caches JAX compiles this
model in seconds and a first fit process takes about half a minute; nutpie's numba compile takes two to
three minutes per variant, and about 45 s again in every new process (its ``numba.cfunc`` wrappers
cannot be cached), though once compiled it samples about 3 times faster per gradient. A statistician's
edit-refit loop starts a new process after each edit of ``priors/``, so the default is BlackJAX. nutpie
stays selectable (``Settings.sampler``) for long same-process refit series and as the benchmark's
baseline; both sample the same PyMC model, so they differ only by Monte Carlo error. (numpyro through
``pm.sample`` was measured too: its data are compiled in as constants, so every refit recompiles.)

BlackJAX runs one chain per CPU device (``jax.pmap``): JAX is asked for as many host devices as there
are chains before its backend starts. Where that cannot be had (JAX already started with fewer), the
chains run vectorised on one device instead.

The sampler is compiled for the layout of :func:`palsy.model.design.for_sampler`: every array of the evidence
is an argument (``pm.Data``), and the counted dims are padded, so that adding a case to ``priors/``
changes the compiled program's data, not the program. JAX's compilation cache (beside the fits) then
serves the new process: on 2 cores a subtype fit process after a case is added took about 14 s against
about 36 s when each edit recompiled (issue 11, ``scripts/benchmark.py --routes``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from palsy.model import build as B
from palsy.model import cache as C
from palsy.model import design as D

_NUTPIE: dict[tuple[str, str, bool], Any] = {}
_MODELS: dict[tuple[str, str, bool], Any] = {}


def clear_compiled() -> None:
    """Forget every compiled sampler of this process (a benchmark measures compilation from cold)."""
    _NUTPIE.clear()
    _MODELS.clear()


def is_compiled(key: tuple[str, str, bool], sampler: str) -> bool:
    """Whether this process has already built the model of ``key`` for ``sampler``."""
    return key in (_NUTPIE if sampler == "nutpie" else _MODELS)


def nutpie_model(key: tuple[str, str, bool], d: D.Design):
    """The nutpie-compiled model of ``key`` (compiled once per process)."""
    try:
        import nutpie
    except ImportError:
        raise ValueError("sampler 'nutpie' is not installed; install it with pip install -e '.[nutpie]' "
                         "(available without it: blackjax)") from None

    if key not in _NUTPIE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _NUTPIE[key] = nutpie.compile_pymc_model(B.from_design(d))
    return _NUTPIE[key]


def run(key: tuple[str, str, bool], d: D.Design, settings: C.Settings, updates: dict[str, np.ndarray],
        progress: Callable[[str], None] | None = None):
    """NUTS on the model of ``key`` with the data of ``d`` replaced by ``updates``; an ArviZ DataTree
    whose ``posterior`` holds every free and deterministic variable and ``sample_stats`` ``diverging``."""
    defaults = d.data()
    for name, value in updates.items():
        if name not in defaults:
            raise ValueError(f"refit data {name!r} is not data of the model; allowed: {', '.join(defaults)}")
        if np.shape(value) != np.shape(defaults[name]):  # the compiled sampler has static shapes
            raise ValueError(f"refit data {name!r} has shape {np.shape(value)}; the compiled model takes "
                             f"{np.shape(defaults[name])}")
    if settings.sampler == "nutpie":
        return _nutpie(key, d, settings, updates, progress)
    return _jax(key, d, settings, updates, progress)


def _nutpie(key, d, settings, updates, progress):
    compiled = nutpie_model(key, d)
    import nutpie

    if updates:
        compiled = compiled.with_data(**updates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dt = nutpie.sample(compiled, draws=settings.draws * settings.thin, tune=settings.tune,
                           chains=settings.chains, cores=min(settings.chains, 2), seed=settings.seed,
                           progress_bar=progress is not None)
    return thinned(dt, settings.thin)


def thinned(dt, thin: int):  # noqa: ANN001, ANN201
    """``dt`` (a DataTree of ``thin`` x draws transitions per chain) with each draw the last of its ``thin``
    transitions, as the JAX backend keeps them; a draw diverged if any of its transitions did, and the energy of
    every transition is kept as ``energy_transitions`` (chain, draw, transition) in place of the kept ones'
    ``energy`` (an E-BFMI of thinned energies would read too high: :func:`palsy.model.fit.e_bfmi`)."""
    if thin == 1:
        return dt
    post = dt["posterior"].to_dataset()
    n = post.sizes["draw"] // thin
    keep = slice(thin - 1, n * thin, thin)
    draw = np.arange(n)
    out = {"posterior": post.isel(draw=keep).assign_coords(draw=draw)}
    if "sample_stats" in dt.children:
        stats = dt["sample_stats"].to_dataset()
        kept = stats.isel(draw=keep).assign_coords(draw=draw)
        if "diverging" in stats:
            windows = stats["diverging"].isel(draw=slice(0, n * thin)).values
            windows = windows.reshape(*windows.shape[:-1], n, thin).any(axis=-1)
            kept["diverging"] = (stats["diverging"].dims, windows)
        if "energy" in stats:
            energy = stats["energy"].transpose("chain", "draw").isel(draw=slice(0, n * thin)).values
            kept = kept.drop_vars("energy")
            kept["energy_transitions"] = (("chain", "draw", "transition"), energy.reshape(len(energy), n, thin))
        out["sample_stats"] = kept
    import xarray as xr

    return xr.DataTree.from_dict(out)


def _start_jax(chains: int) -> int:
    """Ask JAX for one CPU device per chain (at least the default chain count) and keep its compiled
    samplers on disk beside the fits; the device count it has.

    The device count can be set only before JAX's backend starts, and building a model's JAX functions
    starts it, so this runs first. Importing PyMC's JAX module asks for 100 host devices (``XLA_FLAGS``);
    with those the sampler ran about 40% slower on 2 cores than with one device per chain (issue 11,
    measured), and ``jax_num_cpu_devices`` takes precedence over that flag.
    """
    import jax

    try:
        jax.config.update("jax_num_cpu_devices",
                          max(chains, C.Settings().chains, jax.config.jax_num_cpu_devices))
    except RuntimeError:  # the backend already started: keep what it has
        pass
    if not jax.config.jax_compilation_cache_dir:
        # the sampler's program depends on the model's shapes and the settings, not on the data, so a new
        # process (another command, a test, a refit after an edit that keeps the shapes) reuses it
        jax.config.update("jax_compilation_cache_dir", str(C.root() / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return jax.local_device_count()


@dataclasses.dataclass
class JaxModel:
    """A model's log density and constrained values as JAX functions of (values, data).

    The ``pm.Data`` arrays are arguments, not constants, so a refit with other data reuses the compiled
    sampler (the shapes stay the same); only other settings (chains, tuning steps, draws per chunk)
    recompile (``runs``, keyed by them).
    """

    initial: Callable[[np.random.Generator, int], list[np.ndarray]]
    data: dict[str, tuple[tuple[int, ...], str]]  # each pm.Data argument's shape and dtype, in argument order
    out_names: list[str]
    out_dims: dict[str, tuple[str, ...]]
    coords: dict[str, list]
    logp: Callable
    values: Callable
    runs: dict[tuple[int, int, int, int], Run] = dataclasses.field(default_factory=dict)


def jax_model(key: tuple[str, str, bool], d: D.Design) -> JaxModel:
    """The JAX functions of the model of ``key`` for the design ``d`` laid out by
    :func:`palsy.model.design.for_sampler` (built once per process)."""
    if key in _MODELS:
        return _MODELS[key]
    _start_jax(C.Settings().chains)
    import pytensor
    import pytensor.tensor as pt
    from pymc.model.transform.optimization import freeze_dims_and_data
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.graph.replace import graph_replace

    data = {**d.data(), **d.layout()}
    with warnings.catch_warnings(), pytensor.config.change_flags(cxx=""):
        warnings.simplefilter("ignore")
        model = freeze_dims_and_data(B.from_design(d), data=[])  # static shapes; the data stay inputs
        inputs = {model[name]: pt.tensor(name=name, shape=np.shape(value), dtype=model[name].dtype)
                  for name, value in data.items()}
        outs = [v for v in model.unobserved_value_vars if not v.name.endswith("__")]
        logp, *outs = graph_replace([model.logp(), *outs], inputs, strict=False)
        args = [*model.value_vars, *inputs.values()]
        logp_fn = get_jaxified_graph(inputs=args, outputs=[logp])
        values_fn = get_jaxified_graph(inputs=args, outputs=outs)
        # the initial point is evaluated once per fit: in Python, not compiled to C (20 s on a new machine)
        start = model.initial_point()

    names = [v.name for v in model.value_vars]

    def initial(rng: np.random.Generator, chains: int) -> list[np.ndarray]:
        # PyMC's jitter: uniform(-1, 1) added to every unconstrained starting value, per chain
        return [start[n] + rng.uniform(-1, 1, size=(chains, *np.shape(start[n]))) for n in names]

    dims = model.named_vars_to_dims
    _MODELS[key] = JaxModel(
        initial, {name: (tuple(np.shape(v)), str(inputs[model[name]].dtype)) for name, v in data.items()},
        [v.name for v in outs], {v.name: tuple(dims.get(v.name, ())) for v in outs},
        {k: list(v) for k, v in model.coords.items()},
        lambda x, dat: logp_fn(*x, *dat)[0], lambda x, dat: values_fn(*x, *dat))
    return _MODELS[key]


#: The draws of a fit are made in this many calls of one compiled loop, so that a fit can say how far it has
#: got between them (a progress callback inside the loop would keep the program out of JAX's compilation cache).
DRAW_CALLS = 4


@dataclasses.dataclass(frozen=True)
class Run:
    """A compiled fit of ``chains`` chains (one per device where there are enough): ``warmup(keys, x0,
    data)`` gives each chain's state and adapted parameters after the tuning steps; ``draw(keys, state,
    parameters, data)`` moves each chain ``chunk`` draws on and gives its state, values and statistics."""

    warmup: Callable
    draw: Callable
    chunk: int


def _sampler(m: JaxModel, chains: int, tune: int, draws: int, thin: int = 1) -> Run:
    """The compiled fit for these settings, compiled once per (model, chains, tuning steps, chunk, thinning):
    the draws are made :data:`DRAW_CALLS` chunks at a time, each kept draw the last of ``thin`` transitions."""
    chunk = -(-draws // DRAW_CALLS)
    if (chains, tune, chunk, thin) in m.runs:
        return m.runs[(chains, tune, chunk, thin)]
    import blackjax
    import jax

    def warmup(rng_key, x0, dat):
        adapt = blackjax.window_adaptation(blackjax.nuts, lambda x: m.logp(x, dat), target_acceptance_rate=0.8)
        (state, params), _ = adapt.run(rng_key, x0, num_steps=tune)
        return state, params

    def draw(rng_key, state, params, dat):
        step = blackjax.nuts(lambda x: m.logp(x, dat), **params).step

        def one(st, k):
            st, info = step(k, st)
            return st, (st.position, info.is_divergent, info.num_integration_steps, info.acceptance_rate,
                        info.energy)

        state, (pos, div, n_steps, accept, energy) = jax.lax.scan(one, state,
                                                                 jax.random.split(rng_key, chunk * thin))
        # each kept draw is the last of its thin transitions; a divergence in any of them is its draw's
        # (never dropped with the transition); the energies of every transition are kept (E-BFMI needs
        # consecutive transitions: fit.e_bfmi), the steps summed and the acceptance averaged over the window
        pos, div, n_steps, accept, energy = jax.tree.map(lambda a: a.reshape(chunk, thin, *a.shape[1:]),
                                                         (pos, div, n_steps, accept, energy))
        values = jax.vmap(lambda x: m.values(x, dat))(jax.tree.map(lambda a: a[:, -1], pos))
        return state, values, {"diverging": div.any(axis=1), "n_steps": n_steps.sum(axis=1),
                               "acceptance_rate": accept.mean(axis=1), "energy_transitions": energy,
                               "step_size": jax.numpy.full(chunk, params["step_size"])}

    if _start_jax(chains) >= chains:
        run = Run(jax.pmap(warmup, in_axes=(0, 0, None)), jax.pmap(draw, in_axes=(0, 0, 0, None)), chunk)
    else:
        run = Run(jax.jit(jax.vmap(warmup, in_axes=(0, 0, None))),
                  jax.jit(jax.vmap(draw, in_axes=(0, 0, 0, None))), chunk)
    m.runs[(chains, tune, chunk, thin)] = run
    return run


def _jax(key, d, settings, updates, progress):
    import arviz as az
    import jax

    defaults = d.data()
    _start_jax(settings.chains)
    padded = D.for_sampler(d)
    m = jax_model(key, padded)
    run = _sampler(m, settings.chains, settings.tune, settings.draws, settings.thin)
    values = {**D.sampler_data(d, padded, {**defaults, **updates}), **padded.layout()}
    dat = [np.asarray(values[name], dtype=dtype) for name, (_, dtype) in m.data.items()]
    x0 = m.initial(np.random.default_rng([settings.seed, 3]), settings.chains)
    warm_key, draw_key = jax.random.split(jax.random.PRNGKey(settings.seed))
    state, params = run.warmup(jax.random.split(warm_key, settings.chains), x0, dat)
    if progress:
        jax.block_until_ready(params)
        progress(f"{settings.tune} tuning steps per chain done")
    chunks = []
    for i in range(-(-settings.draws // run.chunk)):
        keys = jax.random.split(jax.random.fold_in(draw_key, i), settings.chains)
        state, *out = run.draw(keys, state, params, dat)
        chunks.append(out)
        if progress:  # wait for the chunk, so that it is reported when done (without, JAX runs them back to back)
            jax.block_until_ready(out)
            progress(f"{min((i + 1) * run.chunk, settings.draws)} of {settings.draws} draws per chain made")
    values, stats = (jax.tree.map(lambda *a: np.concatenate(a, axis=1)[:, :settings.draws], *parts)
                     for parts in zip(*jax.device_get(chunks), strict=True))
    posterior = {name: np.asarray(v) for name, v in zip(m.out_names, values, strict=True)}
    return az.from_dict({"posterior": posterior, "sample_stats": {k: np.asarray(v) for k, v in stats.items()}},
                        coords=m.coords, dims={**{k: list(v) for k, v in m.out_dims.items()},
                                               "energy_transitions": ["transition"]},
                        attrs={"posterior": {"inference_library": "blackjax"}})
