"""``palsy serve``: palsy as a CDS Hooks 2.0 service for the record system (FastAPI under uvicorn).

The configuration (``--config FILE``, YAML; docs/service.md) names the service's public URL (the JWT
audience), the record systems allowed in (each ``iss`` with its JWK Set file or URL), the state folder
(replay store, served reports, feedback log: required, since they must survive a restart) and the limits.
``--insecure-dev`` accepts unsigned requests, only on localhost, for development (and may leave the state
folder out: a temporary one, with a warning). The model is loaded once per worker before the port is
served; every problem in the configuration, its key set files, its state folder and its evidence is
reported before anything starts (exit status 2), and a worker that fails to start all the same ends the
command with status 1 (2 for bad input), never 0: also one that fails later, replacing a worker that died, when
uvicorn's supervisor of several workers then stops them all. SIGHUP is never a stop: the workers re-read their
start (one worker) or are restarted (several), and one during the start is kept (:mod:`palsy.scripts.serve.reload`,
:mod:`palsy.scripts.serve.supervisor`);
the stop says what failed meanwhile (a reload, a worker's restart, a restart abandoned).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
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
    with _sighup_kept_during_the_start():  # from the first check on: a SIGHUP is never a stop
        return _serve(args)


def _serve(args: argparse.Namespace) -> int:
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
    from palsy.scripts.serve.reload import RELOAD_FAILED
    from palsy.scripts.serve.supervisor import supervising

    # a worker that fails to start writes why here (app.StartFailures): uvicorn's supervisor of several workers
    # then stops and returns as after a stop signal, and palsy serve said "ended" with status 0 (s16 review S5)
    fd, failures = tempfile.mkstemp(prefix="palsy-serve-start-", suffix=".txt")
    os.close(fd)
    os.environ[C.START_FAILURES_ENV] = failures
    uvicorn_status = None
    try:
        # several workers: uvicorn.run's supervisor is palsy's (supervisor.Supervisor), which knows what stopped it and
        # gives a restarted worker time to load its model
        with supervising(restarted=lambda: _withdraw_failures(failures)) as supervisors:
            try:
                # ws="none": no route speaks WebSocket, so an upgrade request is plain HTTP to uvicorn, through the gate
                uvicorn.run("palsy.scripts.serve.app:create_app", factory=True, host=cfg.host, port=cfg.port,
                            workers=cfg.workers, http=BoundedHttpToolsProtocol, loop="auto", ws="none",
                            access_log=False, log_level="warning", server_header=False,
                            timeout_graceful_shutdown=GRACE_SECONDS)
            except stopping.Stopped:
                # one worker: uvicorn stopped gracefully on SIGTERM, then raised it again into palsy's handler (its
                # own Ctrl-C it keeps): a server's stop signal is its normal end, status 0, which is what a service
                # manager (systemd) counts as a clean stop
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
    failed = [x.partition("\t") for x in lines if not x.startswith("started\t")]
    # one worker: palsy's handler saw the stop signal (None when uvicorn took it itself); several: their supervisor
    supervisor = supervisors[-1] if supervisors else None
    signum = supervisor.stopped_by if supervisor is not None else stopping.handled()
    if failed and not started:
        status, _, why = failed[0]
        print(T.line(f"palsy serve: not started: a worker failed to start ({why}); nothing was served"),
              file=sys.stderr)
        return 2 if status == "2" else 1
    if supervisor is not None and signum is None:
        # the supervisor stopped by itself: a worker failed to start (at the start, or replacing one that died) and
        # uvicorn stops every worker then; it had said "ended; ... the running ones served on", status 0 (s18)
        status, _, why = failed[-1] if failed else ("1", "", "a worker did not start")
        print(T.line(f"palsy serve: stopped: a worker failed to start ({why}), and uvicorn's supervisor then stopped "
                     f"the service; it had served until then"), file=sys.stderr)
        return 2 if status == "2" else 1
    if supervisor is not None:
        stop = "palsy serve: ended"  # several workers: as before s18 (their supervisor took the signal)
    else:
        stop = f"palsy serve: stopped ({stopping.name(signum)})" if signum is not None else "palsy serve: ended"
    said = _what_went_wrong([why for _, _, why in failed], supervisor.abandoned if supervisor else [], RELOAD_FAILED)
    if said:
        # the service served, and a re-reading (one worker) or a worker's restart (several) after SIGHUP failed: the
        # running worker or workers served on with what they had, so the operator's stop is the service's normal
        # end (status 0), with what went wrong said (a second review, s16: it had exited 1, 'nothing was served')
        print(T.line(f"{stop}; {'; '.join(said)}"), file=sys.stderr)
        return 0
    if uvicorn_status not in (None, 0):
        print(T.line(f"palsy serve: the server failed to start (status {uvicorn_status}); nothing was served"),
              file=sys.stderr)
        return uvicorn_status if isinstance(uvicorn_status, int) else 1
    print(T.line(stop), file=sys.stderr)
    return 0


def _withdraw_failures(path: str) -> None:
    """The workers' failed restarts taken out of ``path`` (where they say why they failed): a later restart replaced
    every worker (several workers; one worker's re-reading withdraws its own, :func:`.app.record_reload_success`)."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        kept = [x for x in lines if x.startswith("started\t")]
        if len(kept) != len(lines):
            Path(path).write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    except OSError:
        pass


def _what_went_wrong(failures: list[str], abandoned: list[tuple[int | None, str]], reload_failed: str) -> list[str]:
    """What the stop says went wrong while the service served: a re-reading after SIGHUP that failed (one worker:
    its line holds ``reload_failed``), a worker's restart that failed (several: its own line) and a restart
    abandoned without one (its new worker not ready in time); the last of each kind (s18: a failed re-reading was
    said as "a worker had failed to restart")."""
    reloads = [w for w in failures if reload_failed in w]
    restarts = [w for w in failures if reload_failed not in w]
    told = {w.split(":", 1)[0] for w in restarts}  # "worker <pid>": a new worker that said why it stopped
    untold = [why for pid, why in abandoned if f"worker {pid}" not in told]
    said = []
    if reloads:
        said.append(f"a reload (SIGHUP) had failed and the worker served on with what it had "
                    f"({reloads[-1].replace(reload_failed, '', 1)})")
    if restarts:
        said.append(f"a worker had failed to restart and the running ones served on ({restarts[-1]})")
    if untold:
        said.append(f"a restart after SIGHUP was abandoned and the running workers served on ({untold[-1]})")
    return said


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
def _sighup_kept_during_the_start():
    """A SIGHUP from ``palsy serve``'s first checks on is recorded, not a stop (:class:`.reload.EarlyHangups`): a
    worker of one takes the record over when its app is made and re-reads once ready; several workers start after
    these checks and read everything then, and their supervisor takes SIGHUP from its start. Until s18 a SIGHUP in
    the sub-second before one worker's app was made stopped the service with status 0 (and one during the checks
    with 129), which ``Restart=on-failure`` leaves down or restarts."""
    from palsy.scripts.serve.reload import EarlyHangups

    early = EarlyHangups()
    try:
        yield early
    finally:
        early.restore()
