"""Heavy checks on Dask (issue 19 item 6): the refits of ``palsy check`` and the simulations of
``scripts/sbc.py`` are independent tasks, run in this process or spread over a Dask cluster.

A task is a pure function of its arguments (the evidence object, the variant, the settings with their
seed, the changed ``pm.Data``): a refit gives the same draws wherever it runs, so a cluster gives the
same results as the serial run with the same seeds (a test checks it on a two-worker ``LocalCluster``).
Each worker process builds and compiles the model once (JAX's compilation cache, beside the fits in
``$PALSY_CACHE``, is shared when the workers see the same folder) and reuses it for every task it gets.

:func:`runner` makes the executor: ``"serial"`` (this process, one task after the other), ``None`` or
``"local"`` (a ``dask.distributed.LocalCluster`` of worker processes on this machine), or the address of
a running Dask scheduler (``tcp://host:8786``: the workers must have palsy installed and, for the
compiled model to be reused across runs, a shared ``PALSY_CACHE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

SERIAL = "serial"
LOCAL = "local"


def refit(evidence, variant: str, settings, data: dict[str, np.ndarray] | None = None,
          weights_one: bool = False) -> dict[str, Any]:
    """One refit (a task): NUTS with ``data`` replacing the model's ``pm.Data``; the flat draws of the
    sampled parameters (and theta) and the fit's diagnostics, both plain numpy/JSON."""
    from palsy.model import fit

    dt, _ = fit.sample(variant, evidence, settings, data=data, weights_one=weights_one)
    return {"params": fit.flat_params(dt), "diagnostics": fit.diagnostics(dt)}


class Runner:
    """Runs independent tasks: in this process (``serial``) or as Dask futures, results in order."""

    def __init__(self, scheduler: str | None = SERIAL, *, workers: int | None = None) -> None:
        self.scheduler = scheduler or LOCAL
        self.client = None
        self.cluster = None
        if self.scheduler == SERIAL:
            return
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - a dependency of palsy
            raise ValueError("--scheduler needs dask.distributed (pip install 'dask[distributed]')") from None
        if self.scheduler == LOCAL:
            n = workers or max(1, (os.cpu_count() or 2) // 2)  # a refit runs 2 chains, one core each
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        else:
            self.client = Client(self.scheduler)

    @property
    def describe(self) -> str:
        if self.client is None:
            return "serial (this process)"
        n = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask {'LocalCluster' if self.cluster else self.scheduler}, {n} worker(s)"

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple[tuple, dict]]) -> list[Any]:
        """``[fn(*args, **kwargs) for args, kwargs in calls]``, each call a task."""
        if self.client is None:
            return [fn(*a, **k) for a, k in calls]
        futures = [self.client.submit(fn, *a, pure=False, **k) for a, k in calls]
        return self.client.gather(futures)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def runner(scheduler: str | None = SERIAL, **kwargs: Any) -> Runner:
    """A :class:`Runner` for ``scheduler``: ``"serial"``, ``"local"``/None (a LocalCluster) or an address."""
    return Runner(scheduler, **kwargs)
