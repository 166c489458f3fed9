"""The configuration of ``palsy serve``: one YAML file, read through :mod:`palsy.model.safe_yaml`, every
problem named at start (exit status 2), before a port is opened."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from palsy.model import findings as F
from palsy.model import safe_yaml as Y
from palsy.model import variants

#: Signing algorithms accepted: CDS Hooks 2.0 recommends ES384 and RS384 and forbids ``none`` and every
#: symmetric (HMAC) algorithm ("Trusting CDS Clients", JWT Signing Algorithm).
ALGORITHMS = ("ES384", "RS384")
ASYMMETRIC = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
ENV = "PALSY_SERVE_SETTINGS"  # how the resolved configuration reaches uvicorn's worker processes
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
    max_body_bytes: int = 1_048_576
    max_token_lifetime_seconds: int = 300
    clock_skew_seconds: int = 30
    report_ttl_seconds: int = 3600
    answer_cache_size: int = 4096
    state_dir: str = ""
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
        return cls(**d)


def _is_local(host: str) -> bool:
    if host in LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(path: str | Path | None, *, host: str | None = None, port: int | None = None, insecure_dev: bool = False,
         workers: int | None = None) -> Config:
    """The configuration of ``path`` (optional with ``--insecure-dev``) with the command line's overrides.

    Raises
    ------
    findings.InputError
        Every problem, each naming the key: unknown keys, no issuer (unless ``insecure_dev``), an issuer
        without keys, an algorithm that is symmetric or ``none``, ``insecure_dev`` off localhost.
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
    problems: list[str] = []
    fields = {f.name for f in dataclasses.fields(Config)} - {"insecure_dev", "log_salt"} | {"log_salt_file"}
    for key in raw:
        if key not in fields:
            problems.append(f"{key}: unknown key; allowed: {', '.join(sorted(fields))}")
    base = Path(path).resolve().parent if path else Path.cwd()
    host = host or raw.get("host") or "127.0.0.1"
    port = int(port if port is not None else raw.get("port", 8080))
    if insecure_dev and not _is_local(str(host)):
        problems.append(f"--insecure-dev: allowed only when bound to localhost, not {host!r}")
    issuers = []
    for i, item in enumerate(raw.get("issuers") or [], start=1):
        if not isinstance(item, dict) or not isinstance(item.get("iss"), str):
            problems.append(f"issuers[{i}]: give iss and one of jwks_file, jwks_url")
            continue
        extra = set(item) - {"iss", "jwks_file", "jwks_url"}
        if extra:
            problems.append(f"issuers[{i}]: unknown key(s) {sorted(extra)}")
        jf, ju = item.get("jwks_file"), item.get("jwks_url")
        if bool(jf) == bool(ju):
            problems.append(f"issuers[{i}] ({item['iss']}): give exactly one of jwks_file, jwks_url")
            continue
        if jf:
            jf = str((base / jf).resolve())
            if not Path(jf).is_file():
                problems.append(f"issuers[{i}] ({item['iss']}): jwks_file {jf} is not a file")
        elif not str(ju).startswith(("https://", "http://localhost", "http://127.0.0.1")):
            problems.append(f"issuers[{i}] ({item['iss']}): jwks_url must be https")
        issuers.append(Issuer(item["iss"], jf, ju))
    if not issuers and not insecure_dev:
        problems.append("issuers: none configured; give the record system's iss and its keys (or --insecure-dev on "
                        "localhost for development)")
    algorithms = tuple(raw.get("algorithms") or ALGORITHMS)
    bad = [a for a in algorithms if a not in ASYMMETRIC]
    if bad:
        problems.append(f"algorithms: {bad} not allowed; CDS Hooks forbids none and symmetric algorithms; allowed: "
                        f"{', '.join(ASYMMETRIC)}")
    service_url = str(raw.get("service_url") or f"http://{host}:{port}").rstrip("/")
    if not service_url.startswith(("https://", "http://")):
        problems.append(f"service_url: {service_url!r} is not an http(s) URL")
    ints = {}
    for key, low in (("max_body_bytes", 1024), ("max_token_lifetime_seconds", 10), ("clock_skew_seconds", 0),
                     ("report_ttl_seconds", 60), ("answer_cache_size", 0), ("workers", 1)):
        if key in raw:
            v = raw[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                problems.append(f"{key}: {Y.brief(v)}; give a whole number of at least {low}")
            else:
                ints[key] = v
    variant = raw.get("variant", variants.DEFAULT_VARIANT)
    if variant not in variants.VARIANTS:
        problems.append(f"variant: {variant!r}; allowed: {', '.join(variants.VARIANTS)}")
    salt = ""
    if raw.get("log_salt_file"):
        sp = (base / str(raw["log_salt_file"])).resolve()
        try:
            salt = sp.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"log_salt_file: {sp}: {exc.strerror}")
    if problems:
        raise F.InputError(problems, source)
    state = raw.get("state_dir")
    state_dir = str((base / str(state)).resolve()) if state else tempfile.mkdtemp(prefix="palsy-serve-")
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    return Config(service_url=service_url, issuers=tuple(issuers), algorithms=algorithms, host=str(host), port=port,
                  workers=int(workers or ints.get("workers", 1)), insecure_dev=insecure_dev,
                  state_dir=state_dir, variant=str(variant), priors=raw.get("priors"),
                  log_salt=salt or secrets.token_hex(16), source_label=str(raw.get("source_label") or Config.source_label),
                  source_url=raw.get("source_url"), require_palsy=bool(raw.get("require_palsy", True)),
                  **{k: v for k, v in ints.items() if k != "workers"})
