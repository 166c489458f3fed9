"""The configuration of ``palsy serve``: one YAML file, read through :mod:`palsy.model.safe_yaml`, every
problem named at start (exit status 2), before a port is opened."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from palsy.model import crossref as X
from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from palsy.model import variants
from palsy.model.file_models import base as B

#: Signing algorithms accepted: CDS Hooks 2.0 recommends ES384 and RS384 and forbids ``none`` and every
#: symmetric (HMAC) algorithm ("Trusting CDS Clients", JWT Signing Algorithm).
ALGORITHMS = ("ES384", "RS384")
ASYMMETRIC = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
ENV = "PALSY_SERVE_SETTINGS"  # how the resolved configuration reaches uvicorn's worker processes
#: Where a worker that fails to start writes why, for ``palsy serve`` to read once uvicorn returns (one line each:
#: the exit status it means, a tab, the reason).
START_FAILURES_ENV = "PALSY_SERVE_START_FAILURES"
LOCALHOST = ("127.0.0.1", "::1", "localhost")
SERVICE_ID = "palsy-facial-palsy"


@dataclasses.dataclass(frozen=True)
class Issuer:
    """A CDS client allowed in: its ``iss`` and where its public keys are (a JWKS file or URL)."""

    iss: str
    jwks_file: str | None = None
    jwks_url: str | None = None


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything ``palsy serve`` needs, resolved (paths absolute, defaults filled in)."""

    service_url: str
    issuers: tuple[Issuer, ...] = ()
    algorithms: tuple[str, ...] = ALGORITHMS
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    insecure_dev: bool = False
    #: A record with years of results: 2,400 laboratory Observations of a record system's usual shape are about
    #: 4.4 MB (measured s17: 0.1-0.25 s to read as strict JSON, about 1.7 s of a core to map once; docs/service.md).
    max_body_bytes: int = 4_194_304
    max_token_lifetime_seconds: int = 300
    clock_skew_seconds: int = 30
    report_ttl_seconds: int = 3600
    #: How long feedback on a card is taken after the card (its card file is kept that long; at least the report's
    #: life): a record system may keep a card on screen, and send its outcome, long after its report expired.
    feedback_window_days: int = 30
    answer_cache_size: int = 4096
    #: Requests in progress per worker beyond which one more gets 503 (app.Admission): above the 20 clients of
    #: the load test (docs/service.md) even if one worker gets them all, under the 40 threads of the worker's pool.
    max_concurrent_requests: int = 32
    #: Web origins of browser-based CDS clients allowed to call (CORS; none: only servers call, as most EHRs do).
    cors_origins: tuple[str, ...] = ()
    state_dir: str = ""
    #: ``state_dir`` is a temporary folder made for this start (``--insecure-dev`` without ``state_dir`` only):
    #: replay protection, report links and the feedback log end with the process.
    temporary_state: bool = False
    variant: str = variants.DEFAULT_VARIANT
    priors: str | None = None
    log_salt: str = ""
    source_label: str = "palsy: facial palsy in acute leukaemia (Bayesian differential)"
    source_url: str | None = None
    require_palsy: bool = True

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, text: str) -> Config:
        d = json.loads(text)
        d["issuers"] = tuple(Issuer(**i) for i in d.get("issuers") or ())
        d["algorithms"] = tuple(d.get("algorithms") or ALGORITHMS)
        d["cors_origins"] = tuple(d.get("cors_origins") or ())
        return cls(**d)


def check_bindable(config: Config) -> None:
    """That ``config``'s host resolves and its port can be bound now, before the workers load the model
    (a port in use was an internal error after it).

    Raises
    ------
    findings.InputError
        Naming the host or the port and why.
    """
    import socket

    where = f"{config.host}:{config.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise F.InputError([f"host: {config.host!r} is not an address of this machine "
                            f"({getattr(exc, 'strerror', None) or exc}); give an address to bind, such as 127.0.0.1"],
                           "configuration") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise F.InputError([f"port {config.port} on {config.host}: cannot be bound ({exc.strerror or exc}); "
                                f"give a free port (--port) or an address of this machine (--host), not {where}"],
                               "configuration") from None


def _key_url(url: str) -> bool:
    """Whether the issuers' signing keys may be fetched from ``url``: https with a host, or http on this
    machine (a prefix test let ``http://localhost.example.org`` fetch keys in clear from another host)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _is_local(host))


def _is_local(host: str) -> bool:
    if host in LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _service_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as the service's public URL (None when nothing is): every audience and
    report link is this URL and a path, so it is ``http(s)://host[:port][/path]`` and nothing else (a query,
    a fragment, a user name or password, a space made every one malformed, and userinfo went out in every
    card's link)."""
    if not url.startswith(("https://", "http://")):
        return "is not an http(s) URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "contains a space or a control character; give http(s)://host[:port][/path]"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "is not a URL; give http(s)://host[:port][/path]"
    if not parts.hostname:
        return "has no host; give http(s)://host[:port][/path]"
    if "@" in parts.netloc:
        return "holds a user name or password, which every card's link would carry; give http(s)://host[:port][/path]"
    if "?" in url or "#" in url:
        return "has a query or a fragment, which would break every audience and report link; give " \
               "http(s)://host[:port][/path]"
    return None


def jwks_file_problems(path: str | Path, algorithms: tuple[str, ...]) -> list[str]:
    """What is wrong with the JWK Set file ``path`` as an issuer's keys for tokens of ``algorithms`` (an empty
    list when nothing is): not JSON, not a JWK Set, no key PyJWT can read, or no key that serves any of the
    algorithms (a set of HMAC keys only started cleanly and then refused every token)."""
    import jwt

    from palsy.model import safe_json as J
    from palsy.scripts.serve import auth

    try:
        data = J.loads(Path(path).read_bytes())
    except OSError as exc:
        return [f"cannot be read ({exc.strerror or exc})"]
    except J.JSONInputError as exc:
        return [exc.detail]
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        return ['is not a JWK Set; give {"keys": [a public JWK, ...]} (RFC 7517)']
    try:
        keys = jwt.PyJWKSet.from_dict(data).keys
    except jwt.PyJWTError as exc:
        return [f"has no key that can be read ({str(exc)[:120]})"]
    usable = [k for k in keys for a in algorithms if _serves(auth, k, a)]
    if not usable:
        return [f"has no key for {'/'.join(algorithms)} (its keys: "
                f"{', '.join(sorted({str(k.key_type)[:10] for k in keys}))}); give the issuer's public signing keys"]
    return []


def _serves(auth: Any, key: Any, alg: str) -> bool:
    try:
        auth.key_for(key, alg)
    except auth.AuthError:
        return False
    return True


def check_state(config: Config) -> None:
    """That the state folder's members are of their kind and can be opened (the replay store, the reports'
    folder, the feedback log), before a port opens: a file where the reports' folder belongs, or a folder
    where the replay store's SQLite file belongs, failed each worker's start with a traceback.

    Raises
    ------
    findings.InputError
        Naming the member and what is wrong."""
    import sqlite3

    from palsy.scripts.serve.store import FEEDBACK_FILE, FEEDBACK_LOCK, REPLAY_FILE, REPORTS_DIR

    folder = Path(config.state_dir)
    source = f"state_dir {folder}"
    wanted = {REPORTS_DIR: "folder", REPLAY_FILE: "file", FEEDBACK_FILE: "file", FEEDBACK_LOCK: "file"}
    problems = []
    for name, kind in wanted.items():
        p = folder / name
        if p.exists() and (p.is_dir() if kind == "file" else not p.is_dir()):
            problems.append(f"{p} is not a {kind}; palsy keeps its {'served reports' if kind == 'folder' else 'state'} "
                            f"there: move it away")
    if problems:
        raise F.InputError(problems, source)
    try:
        (folder / REPORTS_DIR).mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / FEEDBACK_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0),
                     0o600)
        os.close(fd)
    except OSError as exc:
        raise F.InputError([f"{exc.filename}: {exc.strerror or exc}; give a state folder palsy may write"],
                           source) from None
    if not os.access(folder / REPORTS_DIR, os.W_OK | os.X_OK):
        raise F.InputError([f"{folder / REPORTS_DIR}: not writable; give a state folder palsy may write"], source)
    from palsy.scripts.serve.auth import ReplayStore

    try:
        ReplayStore(folder / REPLAY_FILE)._local.db.close()  # the workers open their own
    except sqlite3.Error as exc:
        raise F.InputError([f"{folder / REPLAY_FILE}: cannot be opened as the replay store's SQLite file "
                            f"({str(exc)[:120]})"], source) from None


class IssuerEntry(B.Strict):
    """An item of ``issuers``: a record system's ``iss`` and where its public keys are."""

    iss: Annotated[str, Field(min_length=1)]
    jwks_file: _Path | None = None
    jwks_url: Annotated[str, Field(min_length=1)] | None = None


#: A web origin as a browser sends it: https, a lower-case host of dot-separated labels and a port only when
#: it is not the default (http only on this machine), no path, no wildcard.
_ORIGIN = re.compile(r"(https://(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*"
                     r"|http://(localhost|127\.0\.0\.1|\[::1\]))(:(?P<port>[1-9][0-9]{0,4}))?")


def _origin(value: str) -> str:
    m = _ORIGIN.fullmatch(value)
    if not m or int(m["port"] or 1) > 65535 or (value.startswith("https://") and m["port"] == "443"):
        raise B.Problem("is not a web origin as a browser sends it; give https://host or https://host:port (a "
                        "lower-case host, a port other than 443; http only for localhost), with no path and no "
                        "wildcard")
    return value


def _between(low: int, high: int | None = None) -> Any:
    return Annotated[int, Field(ge=low, le=high)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise B.Problem("contains a NUL character, which no path may")
    return value


#: A path in the file: text, not empty, without NUL (the operating system refuses it).
_Path = Annotated[str, Field(min_length=1), AfterValidator(_no_nul)]
#: Worker processes at most (each loads its own copy of the model, about 0.2 GB).
MAX_WORKERS = 64


class ConfigFile(B.Strict):
    """The keys a configuration file may have, each of its type and within its bounds: an unknown key, text
    where a number belongs or a number out of range is named with what is allowed (the same messages as the
    files of ``priors/``, :mod:`palsy.model.file_models.base`)."""

    service_url: Annotated[str, Field(min_length=1)] | None = None
    issuers: list[IssuerEntry] = []
    algorithms: Annotated[list[str], Field(min_length=1)] | None = None
    host: Annotated[str, Field(min_length=1)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    workers: _between(1, MAX_WORKERS) = 1
    max_body_bytes: _between(1024) = Config.max_body_bytes
    # a token's life and the clock skew are bounded by how long the replay store keeps a used jti (auth.py):
    # a skew beyond it would let a token expired and forgotten be used again
    max_token_lifetime_seconds: _between(10, 3600) = Config.max_token_lifetime_seconds
    clock_skew_seconds: _between(0, 300) = Config.clock_skew_seconds
    report_ttl_seconds: _between(60) = Config.report_ttl_seconds
    feedback_window_days: _between(1, 3650) = Config.feedback_window_days
    answer_cache_size: _between(0) = Config.answer_cache_size
    # at most the threads of a worker's pool (anyio's 40), which run the routes and the token check: beyond
    # them the pool would queue without end again
    max_concurrent_requests: _between(1, 40) = Config.max_concurrent_requests
    cors_origins: list[Annotated[str, AfterValidator(_origin)]] = []
    state_dir: _Path | None = None
    variant: str = variants.DEFAULT_VARIANT
    priors: _Path | None = None
    log_salt_file: _Path | None = None
    source_label: Annotated[str, Field(min_length=1)] | None = None
    source_url: Annotated[str, Field(min_length=1)] | None = None
    require_palsy: bool = True


def _entry_of(loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """A problem's entry is its top-level key (a list's items are named by position below it)."""
    return (str(loc[0]), loc) if loc else ("-", ())


#: The settings a file gives as they are (the rest are resolved by :func:`load`).
_AS_GIVEN = ("max_body_bytes", "max_token_lifetime_seconds", "clock_skew_seconds", "report_ttl_seconds",
             "feedback_window_days", "answer_cache_size", "max_concurrent_requests")


def load(path: str | Path | None, *, host: str | None = None, port: int | None = None, insecure_dev: bool = False,
         workers: int | None = None) -> Config:
    """The configuration of ``path`` (optional with ``--insecure-dev``) with the command line's overrides.

    Raises
    ------
    findings.InputError
        Every problem, each naming the key, the value and what is allowed: unknown keys, values of the wrong
        type or out of range (:class:`ConfigFile`), no issuer (unless ``insecure_dev``), an issuer without
        keys, an algorithm that is symmetric or ``none``, ``insecure_dev`` off localhost.
    """
    source = str(path) if path else "command line"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = Y.load(path) or {}
        except Y.YAMLInputError as exc:
            raise F.InputError([exc.detail], source) from None
        if not isinstance(raw, dict):
            raise F.InputError(["the configuration must be a mapping"], source)
    odd = [k for k in raw if not isinstance(k, str)]
    if odd:  # YAML reads `yes:` or `1:` as a key that is not text
        raise F.InputError([f"key {Y.brief(k)}: every key is text; allowed: "
                            f"{', '.join(B.allowed_keys(ConfigFile))}" for k in odd], source)
    problems = B.check(ConfigFile, raw, source, _entry_of)
    # each key checked alone (every key has a default), so that the rules below also read the keys that are
    # valid and every problem is named in one run
    bad_keys = {k for k in raw if B.check(ConfigFile, {k: raw[k]}, source, _entry_of)}
    got = ConfigFile.model_validate({k: v for k, v in raw.items() if k not in bad_keys})
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"--port: {port}; give a port from 1 to 65535")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        problems.append(f"--workers: {workers}; give a whole number from 1 to {MAX_WORKERS}")
    host = host or got.host or "127.0.0.1"
    if insecure_dev and not _is_local(host):
        problems.append(f"--insecure-dev: allowed only when bound to localhost, not {host!r}")
    port = port if port is not None else got.port or Config.port
    base = Path(path).resolve().parent if path else Path.cwd()
    given = raw.get("issuers") if isinstance(raw.get("issuers"), list) else []
    # each issuer read alone too: one issuer of the wrong shape leaves the rules of the others to be checked
    shaped = {i: IssuerEntry.model_validate(x) for i, x in enumerate(given, start=1) if not B.check(IssuerEntry, x, source)}
    issuers = []
    for i, item in shaped.items():
        jf, ju = item.jwks_file, item.jwks_url
        if bool(jf) == bool(ju):
            problems.append(f"issuers[{i}] ({item.iss}): give exactly one of jwks_file, jwks_url")
            continue
        if jf:
            jf = str((base / jf).resolve())
            if not Path(jf).is_file():
                problems.append(f"issuers[{i}] ({item.iss}): jwks_file {jf} is not a file")
            else:  # read now, as the workers will: a bad key set failed each worker's start with a traceback
                problems += [f"issuers[{i}] ({item.iss}): jwks_file {jf}: {p}"
                             for p in jwks_file_problems(jf, tuple(got.algorithms or ALGORITHMS))]
        elif not _key_url(ju):
            problems.append(f"issuers[{i}] ({item.iss}): jwks_url {ju!r}: give an https URL with a host (http only "
                            f"for localhost)")
        issuers.append(Issuer(item.iss, jf, ju))
    if not got.issuers and not insecure_dev and "issuers" not in bad_keys:
        problems.append("issuers: none configured; give the record system's iss and its keys (or --insecure-dev on "
                        "localhost for development)")
    algorithms = tuple(got.algorithms or ALGORITHMS)
    refused = [a for a in algorithms if a not in ASYMMETRIC]
    if refused:
        problems.append(f"algorithms: {refused} not allowed; CDS Hooks forbids none and symmetric algorithms; allowed: "
                        f"{', '.join(ASYMMETRIC)}")
    # an IPv6 address is bracketed in a URL (http://[::1]:8080); it was announced as http://::1:8080
    service_url = (got.service_url or f"http://{f'[{host}]' if ':' in host else host}:{port}").rstrip("/")
    if "service_url" not in bad_keys and (wrong := _service_url_problem(service_url)):
        problems.append(f"service_url: {service_url!r} {wrong}")
    if got.variant not in variants.VARIANTS:
        problems.append(f"variant: {got.variant!r} is not allowed{X.did_you_mean(got.variant, variants.VARIANTS)}; "
                        f"allowed: {', '.join(variants.VARIANTS)}")
    # relative to the configuration's folder, as every path in it (it was read from the working folder)
    priors = str((base / got.priors).resolve()) if got.priors else None
    if priors is not None and not Path(priors).is_dir():
        problems.append(f"priors: {priors} is not a folder; give the evidence folder (default: palsy's own)")
    salt = ""
    if got.log_salt_file:
        sp = (base / got.log_salt_file).resolve()
        try:
            salt = sp.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"log_salt_file: {sp}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}")
    if not got.state_dir and not insecure_dev and "state_dir" not in bad_keys:
        problems.append("state_dir: not given; give a folder palsy may write, kept across restarts: the replay "
                        "protection (used token ids), the report links and the feedback log live there and must "
                        "survive a restart (in a temporary folder a used token is accepted again after a restart); "
                        "only --insecure-dev on localhost may go without it")
    if problems:
        raise F.InputError(problems, source)
    state_dir = str((base / got.state_dir).resolve()) if got.state_dir else tempfile.mkdtemp(prefix="palsy-serve-")
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise F.InputError([f"state_dir: {state_dir}: {exc.strerror or exc}; give a folder palsy may write"],
                           source) from None
    return Config(service_url=service_url, issuers=tuple(issuers), algorithms=algorithms, host=str(host), port=port,
                  cors_origins=tuple(got.cors_origins),
                  workers=workers if workers is not None else got.workers, insecure_dev=insecure_dev, state_dir=state_dir,
                  temporary_state=not got.state_dir,
                  variant=got.variant, priors=priors, log_salt=salt or secrets.token_hex(16),
                  source_label=got.source_label or Config.source_label, source_url=got.source_url,
                  require_palsy=got.require_palsy, **{k: getattr(got, k) for k in _AS_GIVEN})
