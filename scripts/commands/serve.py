"""``palsy serve``: palsy as a CDS Hooks 2.0 service for the record system (FastAPI under uvicorn).

The configuration (``--config FILE``, YAML; docs/service.md) names the service's public URL (the JWT
audience), the record systems allowed in (each ``iss`` with its JWK Set file or URL), the state folder
(replay store, served reports, feedback log) and the limits. ``--insecure-dev`` accepts unsigned
requests, only on localhost, for development. The model is loaded once per worker before the port is
served; every problem in the configuration is reported before anything starts (exit status 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

from palsy.reports import terminal as T

#: How long a stop signal waits for the requests in progress before the service closes their connections.
GRACE_SECONDS = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="the service configuration (docs/service.md)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1, or the configuration's)")
    p.add_argument("--port", type=int, help="port (default 8080, or the configuration's)")
    p.add_argument("--workers", type=int, help="worker processes, each with its own copy of the model (default 1)")
    p.add_argument("--insecure-dev", action="store_true",
                   help="accept requests without a JWT (development only; refused unless bound to localhost)")


def run(args: argparse.Namespace) -> int:
    from palsy.scripts.serve import config as C

    if args.config is None and not args.insecure_dev:
        from palsy.model.findings import InputError

        raise InputError(["--config: give the service configuration (or --insecure-dev on localhost for "
                          "development)"], "command line")
    cfg = C.load(args.config, host=args.host, port=args.port, insecure_dev=args.insecure_dev, workers=args.workers)
    C.check_bindable(cfg)
    if cfg.insecure_dev:
        print(T.line(f"palsy serve: WARNING: --insecure-dev: requests without a JWT are accepted on {cfg.host}; "
                     "never use this with patient data"), file=sys.stderr)
    os.environ[C.ENV] = cfg.to_env()
    if cfg.workers > 1:  # each worker one BLAS thread (unless set): workers on a core each, not contending
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
    print(T.line(f"palsy serve: {cfg.service_url}/cds-services on {cfg.host}:{cfg.port}, {cfg.workers} worker(s), "
                 f"state in {cfg.state_dir}"), file=sys.stderr)
    import uvicorn  # once the configuration is known to be good

    from palsy.scripts import stopping
    from palsy.scripts.serve.protocol import BoundedHttpToolsProtocol

    with _sighup_stops_one_worker(cfg.workers):
        try:
            # ws="none": no route speaks WebSocket, so an upgrade request is plain HTTP to uvicorn, through the gate
            uvicorn.run("palsy.scripts.serve.app:create_app", factory=True, host=cfg.host, port=cfg.port,
                        workers=cfg.workers, http=BoundedHttpToolsProtocol, loop="auto", ws="none", access_log=False,
                        log_level="warning", server_header=False, timeout_graceful_shutdown=GRACE_SECONDS)
        except stopping.Stopped:
            # one worker: uvicorn stopped gracefully on SIGTERM, then raised it again into palsy's handler (its
            # own Ctrl-C it keeps; several workers' supervisor returns): a server's stop signal is its normal
            # end, status 0, which is what a service manager (systemd) counts as a clean stop
            pass
    signum = stopping.handled()  # None when uvicorn or its supervisor took the signal itself
    print(T.line(f"palsy serve: stopped ({stopping.name(signum)})" if signum is not None else "palsy serve: ended"),
          file=sys.stderr)
    return 0


@contextlib.contextmanager
def _sighup_stops_one_worker(workers: int):
    """With one worker, SIGHUP stops the service as SIGTERM does (uvicorn's server takes only SIGINT and
    SIGTERM, and palsy's own handler, raising in the event loop's signal callback, could not stop it); several
    workers' supervisor takes SIGHUP itself (it restarts the workers)."""
    if workers != 1 or not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGHUP)
    if old is None:  # a handler set outside Python cannot be put back: left in place
        yield
        return
    signal.signal(signal.SIGHUP, lambda _signum, _frame: signal.raise_signal(signal.SIGTERM))
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, old)
