"""``palsy serve``: palsy as a CDS Hooks 2.0 service for the record system (FastAPI under uvicorn).

The configuration (``--config FILE``, YAML; docs/service.md) names the service's public URL (the JWT
audience), the record systems allowed in (each ``iss`` with its JWK Set file or URL), the state folder
(replay store, served reports, feedback log: required, since they must survive a restart) and the limits.
``--insecure-dev`` accepts unsigned requests, only on localhost, for development (and may leave the state
folder out: a temporary one, with a warning). The model is loaded once per worker before the port is
served; every problem in the configuration, its key set files, its state folder and its evidence is
reported before anything starts (exit status 2), and a worker that fails to start all the same ends the
command with status 1 (2 for bad input), never 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

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
    # what each worker reads at its start, read now: a problem in it is named before a port opens (exit 2), not
    # in each worker's traceback (s16 review S5)
    C.check_state(cfg)
    _check_evidence(cfg)
    if cfg.insecure_dev:
        print(T.line(f"palsy serve: WARNING: --insecure-dev: requests without a JWT are accepted on {cfg.host}; "
                     "never use this with patient data"), file=sys.stderr)
    if cfg.temporary_state:
        print(T.line(f"palsy serve: WARNING: no state_dir: the replay store, the reports and the feedback log are "
                     f"in a temporary folder ({cfg.state_dir}), removed when it stops: a used token is accepted "
                     f"again after a restart, report links break and the feedback log is split; give state_dir "
                     f"for anything but development"), file=sys.stderr)
    os.environ[C.ENV] = cfg.to_env()
    if cfg.workers > 1:  # each worker one BLAS thread (unless set): workers on a core each, not contending
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
    print(T.line(f"palsy serve: {cfg.service_url}/cds-services on {cfg.host}:{cfg.port}, {cfg.workers} worker(s), "
                 f"state in {cfg.state_dir}"), file=sys.stderr)
    import uvicorn  # once the configuration is known to be good

    from palsy.scripts import stopping
    from palsy.scripts.serve.protocol import BoundedHttpToolsProtocol

    # a worker that fails to start writes why here (app.StartFailures): uvicorn's supervisor of several workers
    # then stops and returns as after a stop signal, and palsy serve said "ended" with status 0 (s16 review S5)
    fd, failures = tempfile.mkstemp(prefix="palsy-serve-start-", suffix=".txt")
    os.close(fd)
    os.environ[C.START_FAILURES_ENV] = failures
    uvicorn_status = None
    try:
        with _sighup_stops_one_worker(cfg.workers):
            try:
                # ws="none": no route speaks WebSocket, so an upgrade request is plain HTTP to uvicorn, through the gate
                uvicorn.run("palsy.scripts.serve.app:create_app", factory=True, host=cfg.host, port=cfg.port,
                            workers=cfg.workers, http=BoundedHttpToolsProtocol, loop="auto", ws="none",
                            access_log=False, log_level="warning", server_header=False,
                            timeout_graceful_shutdown=GRACE_SECONDS)
            except stopping.Stopped:
                # one worker: uvicorn stopped gracefully on SIGTERM, then raised it again into palsy's handler (its
                # own Ctrl-C it keeps; several workers' supervisor returns): a server's stop signal is its normal
                # end, status 0, which is what a service manager (systemd) counts as a clean stop
                pass
            except SystemExit as exc:  # one worker that failed to start: uvicorn exits 3
                uvicorn_status = exc.code
        lines = Path(failures).read_text(encoding="utf-8", errors="replace").splitlines()
    finally:
        os.environ.pop(C.START_FAILURES_ENV, None)
        with contextlib.suppress(OSError):
            os.unlink(failures)
        if cfg.temporary_state:  # --insecure-dev's folder: no restart reads it again (291 had piled up in /tmp)
            shutil.rmtree(cfg.state_dir, ignore_errors=True)
    started = any(x.startswith("started\t") for x in lines)
    failed = [x for x in lines if not x.startswith("started\t")]
    signum = stopping.handled()  # None when uvicorn or its supervisor took the signal itself
    if failed and not started:
        status, _, why = failed[0].partition("\t")
        print(T.line(f"palsy serve: not started: a worker failed to start ({why}); nothing was served"),
              file=sys.stderr)
        return 2 if status == "2" else 1
    if failed:
        # the service served, and a worker's restart failed (after SIGHUP): uvicorn's supervisor kept the old
        # workers and went on serving, so its return is the operator's stop, the service's normal end (status 0),
        # with what went wrong said (a second review, s16: it had exited 1, 'nothing was served')
        why = failed[-1].partition("\t")[2]
        stop = f"stopped ({stopping.name(signum)})" if signum is not None else "ended"
        print(T.line(f"palsy serve: {stop}; a worker had failed to restart and the running ones served on ({why})"),
              file=sys.stderr)
        return 0
    if uvicorn_status not in (None, 0):
        print(T.line(f"palsy serve: the server failed to start (status {uvicorn_status}); nothing was served"),
              file=sys.stderr)
        return uvicorn_status if isinstance(uvicorn_status, int) else 1
    print(T.line(f"palsy serve: stopped ({stopping.name(signum)})" if signum is not None else "palsy serve: ended"),
          file=sys.stderr)
    return 0


def _check_evidence(cfg) -> None:  # noqa: ANN001 - a palsy.scripts.serve.config.Config
    """The evidence folder each worker reads (the configuration's ``priors``, else ``$PALSY_PRIORS``, else palsy's
    own), read now: its files, the FHIR mapping table and the decision settings.

    Raises
    ------
    findings.InputError or evidence.EvidenceError
        Naming the file and what is wrong (exit status 2)."""
    from palsy.model import decision
    from palsy.model import evidence as E
    from palsy.model import fhir as X
    from palsy.scripts.commands import common

    pdir = common.priors_dir(argparse.Namespace(priors=cfg.priors))
    E.load(pdir)
    X.load_table(pdir)
    decision.load(pdir)


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
