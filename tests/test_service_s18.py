"""The s18 review of the service's fixes of 8f804ba (/work/lit/notes/s18/service.md), each finding tested as a record
system or an operator meets it: the real server in a subprocess on a free port, called over HTTP with signed CDS Hooks
JWTs (the helpers of tests/test_service.py), its start, model loads or stop made slow or failing where a finding needs
it by a ``sitecustomize`` the server's processes import."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_service import ISS, SERVICE, _bundle, _free_port, _jwk, _serving, hook_body, keys, token

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("service")]

__all__ = ["keys"]  # the key fixture of tests/test_service.py, used here

CARD = f"/cds-services/{SERVICE}"
FEEDBACK = f"{CARD}/feedback"


def _settings(tmp_path: Path, keys, port: int, **extra) -> dict:
    (tmp_path / "ehr.jwks.json").write_text(json.dumps({"keys": [_jwk(keys["ec"][0], "ehr-ec", "ES384")]}))
    return {"service_url": f"http://127.0.0.1:{port}", "port": port, "workers": 1, "state_dir": "state",
            "issuers": [{"iss": ISS, "jwks_file": "ehr.jwks.json"}], **extra}


@pytest.fixture(scope="module")
def s18(tmp_path_factory, keys, posterior_subtype):
    """The real server, one worker, a file issuer, the default body limit (4 MB)."""
    folder = tmp_path_factory.mktemp("serve-s18")
    port = _free_port()
    with _serving(folder, _settings(folder, keys, port)) as (base, proc, log):
        yield {"base": base, "folder": folder, "proc": proc, "log": log}


def post(srv, keys, body, path: str = CARD) -> httpx.Response:
    return httpx.post(srv["base"] + path, json=body, headers={"Authorization": "Bearer " + token(srv, keys, path)},
                      timeout=120)


def _head(srv, keys, length: int) -> bytes:
    return (f"POST {CARD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token(srv, keys, CARD)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def _port(srv) -> int:
    return int(srv["base"].rsplit(":", 1)[1])


def _answer(sock: socket.socket) -> bytes:
    """One whole answer read from ``sock``: its head and its body of Content-Length bytes."""
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536) or b"\r\n\r\n"
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1)) if b"ength" in head else 0
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


# --- #3: a body over the limit while a large record is read ------------------------------------------------------------

def test_a_body_over_the_limit_is_a_413_at_once_while_a_large_record_holds_the_turn(s18, keys):
    """#3: while a large record was read (one at a time per worker), a body over the limit by its Content-Length
    waited for the next turn, 10 s, and was told to retry (503 ``busy_large_records``), a request that can never
    pass. It is the 413 naming the limit, at once: the body limit is checked before a turn is waited for."""
    with socket.create_connection(("127.0.0.1", _port(s18)), timeout=30) as large:
        large.sendall(_head(s18, keys, 4_000_000) + b"{" + b" " * 700_000)  # a large record, still coming
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", _port(s18)), timeout=30) as over:
            t = time.monotonic()
            over.sendall(_head(s18, keys, 5_000_000))
            got = _answer(over)
            took = time.monotonic() - t
    assert got.startswith(b"HTTP/1.1 413 ") and took < 3, (took, got[:300])
    answer = json.loads(got.split(b"\r\n\r\n", 1)[1])
    assert answer["error"] == "too_large" and "max_body_bytes" in answer["message"]


# --- #5: a feedback outcome that is not an object ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [1, "dismissed", None, True, [], [{"outcome": "overridden"}]],
                         ids=["number", "text", "null", "true", "empty-list", "list"])
def test_an_outcome_that_is_not_an_object_is_refused_alone(s18, keys, bad):
    """#5: one outcome that was not a JSON object (a number, null, a list) made the whole feedback request a 400, and
    the valid outcome beside it was lost (the second review of s17, #8, read each object on its own, but the list was
    still validated as a list of objects). It is refused by its place; the valid one is recorded."""
    r = post(s18, keys, hook_body(_bundle("source-002")))
    card = r.json()["cards"][0]["uuid"]
    log = s18["folder"] / "state" / "feedback.jsonl"
    lines = len(log.read_text().splitlines())
    good = {"card": card, "outcome": "overridden", "outcomeTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    r = post(s18, keys, {"feedback": [good, bad]}, FEEDBACK)
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
    assert r.json()["unknown"][0].startswith("feedback.1: "), r.json()
    assert len(log.read_text().splitlines()) == lines + 1
    r = post(s18, keys, {"feedback": [bad]}, FEEDBACK)
    assert r.status_code == 400 and r.json()["error"] == "bad_request" and r.json()["problems"][0].startswith("feedback.0")


# --- the leftovers: SIGHUP before a worker's app is made; #6: a SIGHUP during a re-reading ---------------------------

#: Imported by every process of the server (its sitecustomize): ``palsy serve``'s checks or its uvicorn.run made to
#: take 3 s, a file touched when that window opens; a model load made 2 s slower while a file exists.
SLOW_WINDOWS = '''
import os, time
WINDOW, WHERE, SLOW = (os.environ.get(k) for k in ("PALSY_TEST_HUP_WINDOW", "PALSY_TEST_HUP_WHERE",
                                                     "PALSY_TEST_SLOW_RELOAD"))
if WINDOW and WHERE == "checks":
    from palsy.scripts.commands import serve
    check = serve._check_evidence

    def slow_check(cfg):
        open(WINDOW, "w").close()
        time.sleep(3)
        return check(cfg)

    serve._check_evidence = slow_check
elif WINDOW:
    import uvicorn
    run = uvicorn.run

    def slow_run(*args, **kwargs):
        open(WINDOW, "w").close()
        time.sleep(3)
        return run(*args, **kwargs)

    uvicorn.run = slow_run
if SLOW:
    from palsy.scripts.serve import engine
    load = engine.Engine.load.__func__

    def slow_load(cls, config):
        if os.path.exists(SLOW):
            time.sleep(2)
        return load(cls, config)

    engine.Engine.load = classmethod(slow_load)
'''


def _start(tmp_path: Path, settings: dict, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """``palsy serve`` with ``settings`` and ``env`` (and the folder's sitecustomize on its path), not waited for."""
    (tmp_path / "palsy.yaml").write_text(json.dumps(settings))
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "palsy.scripts.palsy", "serve", "--config",
                                 str(tmp_path / "palsy.yaml")], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": path, **env})
    return proc, log


def _until(proc: subprocess.Popen, log: Path, done, seconds: float = 120) -> str:
    """The log once ``done(text)`` holds (the process still running), else the assertion naming it."""
    deadline = time.monotonic() + seconds
    while not done(text := log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, text[-3000:]
        time.sleep(0.2)
    return text


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP: POSIX")
@pytest.mark.parametrize("where", ["checks", "app"])
def test_sighup_before_a_workers_app_is_made_is_a_reload_never_a_stop(tmp_path, keys, posterior_subtype, where):
    """The leftover of the second review of s17, #5: a SIGHUP in the sub-second before one worker's app was made
    (``uvicorn.run`` importing it) stopped the service with status 0, which ``Restart=on-failure`` leaves down, and
    one during ``palsy serve``'s own checks with status 129. From the first check on it is recorded, and the worker
    re-reads once ready.

    #6 (after the app's window): a SIGHUP during a re-reading was dropped ("already in progress"), and a file changed
    after the running re-reading had read it waited for another SIGHUP. The worker now re-reads once more."""
    port = _free_port()
    window, slow = tmp_path / "window", tmp_path / "slow-reload"
    (tmp_path / "sitecustomize.py").write_text(SLOW_WINDOWS)
    proc, log = _start(tmp_path, _settings(tmp_path, keys, port), {
        "PALSY_TEST_HUP_WINDOW": str(window), "PALSY_TEST_HUP_WHERE": where, "PALSY_TEST_SLOW_RELOAD": str(slow)})
    try:
        deadline = time.monotonic() + 120
        while not window.exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        _until(proc, log, lambda text: "SIGHUP: the worker re-read" in text)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        if where == "app":
            slow.touch()  # a re-reading takes 2 s more: a second SIGHUP comes during it
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            proc.send_signal(signal.SIGHUP)
            _until(proc, log, lambda text: text.count("SIGHUP: the worker re-read") == 3, seconds=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)
    text = log.read_text()
    assert status == 0 and "palsy serve: stopped (SIGTERM)" in text, text[-3000:]
    assert "SIGHUP during the start" in text and "failed" not in text and "Traceback" not in text, text[-3000:]
    if where == "app":
        assert "SIGHUP during a re-reading: the worker re-reads once more" in text


# --- #1, #2: several workers' supervisor ------------------------------------------------------------------------------

#: The server's sitecustomize for several workers: the restart's bound patched (PALSY_TEST_READY_SECONDS); a model
#: load that first waits the seconds written in a file while it exists (or fails, when the file says so); the second
#: worker to load its model failing once the first has started.
WORKERS = '''
import os, time
READY, SLOW, FAIL = (os.environ.get(k) for k in ("PALSY_TEST_READY_SECONDS", "PALSY_TEST_SLOW_LOAD",
                                                   "PALSY_TEST_FAIL_SECOND"))
if READY:
    from palsy.scripts.serve import supervisor
    supervisor.RESTART_READY_SECONDS = float(READY)
if SLOW or FAIL:
    from palsy.scripts.serve import engine
    load = engine.Engine.load.__func__

    def patched(cls, config):
        if SLOW and os.path.exists(SLOW):
            wait = open(SLOW).read()
            if wait == "fail":
                raise RuntimeError("injected: the new worker cannot load its model")
            time.sleep(float(wait))
        if FAIL:
            try:
                os.close(os.open(FAIL, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                started = os.environ["PALSY_SERVE_START_FAILURES"]
                deadline = time.monotonic() + 60
                while "started" not in open(started).read() and time.monotonic() < deadline:
                    time.sleep(0.1)
                raise RuntimeError("injected: this worker cannot load its model")
        return load(cls, config)

    engine.Engine.load = classmethod(patched)
'''


def _pids(text: str) -> set[str]:
    return set(re.findall(r" (\d+) INFO palsy serve: model loaded", text))


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP: POSIX")
def test_several_workers_restart_gives_a_new_worker_time_and_says_an_abandoned_restart(tmp_path, keys,
                                                                                      posterior_subtype):
    """#2: with two workers, SIGHUP's restart gave each new worker uvicorn's 5 s to be ready, then killed it and kept
    the old one, said only in uvicorn's line: an evidence change that needs a fit (a minute) was never read, and the
    stop said nothing. A new worker now has ``supervisor.RESTART_READY_SECONDS`` (here 15 s): one that takes longer
    is abandoned, said in the log; one that takes 7 s replaces the old (and a restart that replaced every worker
    withdraws what earlier ones failed, as one worker's successful re-reading does); a failed restart is said at the
    stop; a SIGTERM during a restart stops the service within ``supervisor.STOPPING_RESTART_SECONDS`` (10 s: uvicorn
    took signals between its steps only, and would have waited for the whole bound)."""
    port = _free_port()
    slow = tmp_path / "slow-load"
    (tmp_path / "sitecustomize.py").write_text(WORKERS)
    proc, log = _start(tmp_path, _settings(tmp_path, keys, port, workers=2),
                       {"PALSY_TEST_READY_SECONDS": "15", "PALSY_TEST_SLOW_LOAD": str(slow)})
    base = f"http://127.0.0.1:{port}"
    try:
        first = _pids(_until(proc, log, lambda text: len(_pids(text)) == 2))
        slow.write_text("40")  # more than the bound
        proc.send_signal(signal.SIGHUP)
        _until(proc, log, lambda text: "the restart was abandoned (worker" in text, seconds=60)
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
        slow.write_text("7")  # more than uvicorn's 5 s, less than the bound
        proc.send_signal(signal.SIGHUP)
        text = _until(proc, log, lambda text: len(_pids(text)) == 4 or text.count("abandoned") > 1)
        assert len(_pids(text) - first) == 2 and text.count("abandoned") == 1, text[-3000:]
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
        slow.write_text("fail")
        proc.send_signal(signal.SIGHUP)
        _until(proc, log, lambda text: text.count("abandoned") == 2)
        slow.write_text("60")
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)  # a restart in progress, its new worker 58 s from ready
    finally:
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)
        took = time.monotonic() - t
    text = log.read_text()
    assert status == 0 and took < 20, (status, took, text[-3000:])
    stop = text.rstrip().splitlines()[-1]
    assert re.fullmatch(r"palsy serve: ended; a worker had failed to restart and the running ones served on \(worker "
                        r"\d+: RuntimeError: injected: the new worker cannot load its model\)", stop), text[-3000:]
    assert "Traceback" not in text


def test_a_worker_that_fails_to_start_beside_one_that_started_is_no_clean_stop(tmp_path, keys, posterior_subtype):
    """#1: with two workers, one that failed to start while the other had started made uvicorn's supervisor stop the
    service, and ``palsy serve`` said "ended; a worker had failed to restart and the running ones served on" with
    status 0 (no worker ran; ``Restart=on-failure`` left it down). It is status 1, saying that the supervisor
    stopped the service."""
    port = _free_port()
    (tmp_path / "sitecustomize.py").write_text(WORKERS)
    proc, log = _start(tmp_path, _settings(tmp_path, keys, port, workers=2),
                       {"PALSY_TEST_FAIL_SECOND": str(tmp_path / "first")})
    try:
        status = proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert status == 1, text[-3000:]
    assert re.search(r"palsy serve: stopped: a worker failed to start \(worker \d+: RuntimeError: injected: this "
                     r"worker cannot load its model\), and uvicorn's supervisor then stopped the service", text), text
    assert "served on" not in text and "Traceback" not in text


def test_the_stop_says_what_failed_while_the_service_served():
    """The leftover of the second review of s17, #14: a failed one-worker reload was said at the stop as "a worker had
    failed to restart and the running ones served on"; it is said as a reload. A restart of several workers that
    failed is said as before; one abandoned without a line of its new worker's (not ready in time) is said as
    abandoned; each once, the last of its kind."""
    from palsy.scripts.commands.serve import _what_went_wrong
    from palsy.scripts.serve.reload import RELOAD_FAILED

    reload = _what_went_wrong([f"worker 7: {RELOAD_FAILED}EvidenceError: rates.yaml: bad"], [], RELOAD_FAILED)
    assert reload == ["a reload (SIGHUP) had failed and the worker served on with what it had (worker 7: "
                      "EvidenceError: rates.yaml: bad)"]
    several = _what_went_wrong(["worker 8: KeyFileError: not JSON"],
                               [(8, "worker 8 stopped before it was ready"), (9, "worker 9 was not ready within 300 s")],
                               RELOAD_FAILED)
    assert several == ["a worker had failed to restart and the running ones served on (worker 8: KeyFileError: not "
                       "JSON)", "a restart after SIGHUP was abandoned and the running workers served on (worker 9 was "
                       "not ready within 300 s)"]
    assert _what_went_wrong([], [], RELOAD_FAILED) == []
