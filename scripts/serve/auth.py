"""Only the record's system gets in: the CDS Hooks 2.0 JWT ("Trusting CDS Clients").

Every call carries ``Authorization: Bearer <JWT>``. The token is accepted when its ``iss`` is a configured
issuer, its ``alg`` is one of the configured asymmetric algorithms (ES384 and RS384 by default: never
``none`` or HMAC), its ``kid`` names a key of that issuer's JWK Set (:mod:`.keysets`: a file re-read when it
changes, a URL fetched again for a key it lacks), the signature verifies, ``aud`` is the URL of the endpoint
called, ``exp`` and ``iat`` hold (with the configured clock skew, and a lifetime no longer than the configured
maximum) and ``jti`` has not been seen before. No key is ever fetched from a URL the token chose: a ``jku``
header of a URL issuer must be its configured ``jwks_url``, and one of a file issuer is not used (the file is
the out-of-band channel CDS Hooks 2.0 names; until s17 such a token, as Epic and the CDS Hooks sandbox send
it, was refused). Seen ``jti`` values are kept in a SQLite file in the state folder until they expire, so a
replay is refused by every worker.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

import jwt

from palsy.scripts.serve import state as S
from palsy.scripts.serve.config import Config, Issuer
from palsy.scripts.serve.keysets import FileKeys, KeySetUnavailable, UnknownKey, UrlKeys
from palsy.scripts.serve.store import REPLAY_FILE

__all__ = ["AuthError", "KeySetUnavailable", "ReplayStore", "Verifier", "key_for"]


class AuthError(Exception):
    """A request without a valid token (HTTP 401); the message says why, never the token."""


#: The largest NumericDate taken (``exp``, ``iat``, ``nbf``: seconds since 1970): the year 5138. A signed token
#: whose ``exp`` was an integer of 401 digits passed PyJWT and overflowed float() (a 500, s16 review S4).
MAX_NUMERIC_DATE = 10**11


#: How long after its expiry a used jti is kept: longer than any clock skew the configuration allows
#: (``clock_skew_seconds`` at most 300), so a token can never be accepted again once its jti is forgotten.
KEEP_USED_SECONDS = 3600


#: The key type (and, for ECDSA, the curve) each accepted algorithm needs (RFC 7518 section 3.1). A JWK without
#: ``alg`` (it is optional, RFC 7517) serves the token's algorithm only when it is this key's kind; PyJWT binds
#: such a key to RS256 or to its curve's ES algorithm, and refused RS384 tokens of an RSA key without ``alg``.
KEY_KINDS = {**{f"{f}{n}": ("RSA", None) for f in ("RS", "PS") for n in (256, 384, 512)},
             "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521")}


def key_for(key: jwt.PyJWK, alg: str) -> jwt.PyJWK:
    """``key`` bound to the token's ``alg`` (already one of the configured algorithms): as it is when the JWK
    names its ``alg`` (PyJWT then refuses any other), and bound to ``alg`` when it names none and its ``kty``
    (and ``crv``) are what ``alg`` needs; never otherwise, so that no key verifies a token of another kind of
    algorithm (an RSA key an HMAC or ECDSA token, a P-256 key an ES384 token).

    Raises
    ------
    AuthError
        When the key cannot serve ``alg``.
    """
    data = getattr(key, "_jwk_data", None)  # the JWK as given (PyJWK keeps no public copy of its alg)
    if not isinstance(data, dict):
        raise AuthError("the issuer's key cannot be read")
    named = data.get("alg")
    if named is not None:
        if named != alg:
            raise AuthError(f"the token's alg {alg} is not its key's ({str(named)[:10]})")
        return key
    kty, crv = KEY_KINDS.get(alg, (None, None))
    if kty is None or data.get("kty") != kty or (crv is not None and data.get("crv") != crv):
        raise AuthError(f"the token's alg {alg} does not fit its key (kty {str(data.get('kty'))[:10]})")
    try:
        return key if key.algorithm_name == alg else jwt.PyJWK(data, algorithm=alg)
    except jwt.PyJWTError:
        raise AuthError("the issuer's key cannot be read") from None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_url(url: str) -> str | None:
    """``url`` as RFC 3986 compares it (section 6.2.2-6.2.3): scheme and host in lower case, a default port
    dropped, dot segments removed, an empty path as ``/``, no trailing slash (beyond the root), no fragment; None
    when it is not an http(s) URL with a host. The path and query keep their case."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    segments: list[str] = []
    for seg in parts.path.split("/")[1:]:
        if seg == "..":
            if segments:
                segments.pop()
        elif seg != ".":
            segments.append(seg)
    path = "/" + "/".join(segments)
    path = path.rstrip("/") or "/"
    return urllib.parse.urlunsplit((scheme, netloc, path, parts.query, ""))


def same_url(given: object, configured: str) -> bool:
    """Whether a token's ``jku`` names the configured JWK Set URL (:func:`normal_url`: ``HTTPS://Host:443/jwks/``
    is ``https://host/jwks``; it was compared as a string, second review #13). Never fetched either way."""
    return isinstance(given, str) and normal_url(given) is not None and normal_url(given) == normal_url(configured)


def _numeric_date(value: object) -> bool:
    """Whether ``value`` is a JSON number usable as a NumericDate (RFC 7519): not a bool or text, finite,
    between 0 and :data:`MAX_NUMERIC_DATE`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return 0 <= value <= MAX_NUMERIC_DATE  # NaN compares False; a huge int compares without a float


class ReplayStore:
    """``jti`` values seen, per issuer, until they expire (shared by the workers through SQLite)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.folder = Path(path).parent
        self._local = threading.local()
        # a worker's threads take turns on a lock of their own, so that only the workers meet at SQLite's write
        # lock, whose busy handler waits by sleeping (1, 2, 5, ... up to 100 ms): measured with 2 processes of
        # 16 threads, the slowest insert of 4,800 took 131-430 ms without this lock and 57-71 ms with it
        self._turns = threading.Lock()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS jti (iss TEXT, jti TEXT, exp REAL, PRIMARY KEY (iss, jti))")
            # the purge once a minute finds the expired rows by this index: without it, it read the whole table
            # (an hour of tokens) while holding the write lock every worker's requests wait for
            db.execute("CREATE INDEX IF NOT EXISTS jti_exp ON jti (exp)")
        self._last_purge = 0.0

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def first_use(self, iss: str, jti: str, exp: float) -> bool:
        """Record ``jti``; False when it was seen before (a replay).

        Raises
        ------
        state.StateUnavailable
            The store cannot be written (a full disk, a read-only folder).
        """
        with S.writing(self.folder, "the replay store"), self._turns:
            db = self._db()
            now = time.time()
            if now - self._last_purge > 60:
                db.execute("DELETE FROM jti WHERE exp < ?", (now - KEEP_USED_SECONDS,))
                self._last_purge = now
            try:
                db.execute("INSERT INTO jti (iss, jti, exp) VALUES (?, ?, ?)", (iss, jti, exp))
            except sqlite3.IntegrityError:
                return False
            return True


def _key_set(issuer: Issuer, before: FileKeys | UrlKeys | None) -> FileKeys | UrlKeys:
    """An issuer's key set; ``before``, the one read at the worker's start, kept when it reads the same file or
    URL (a SIGHUP's re-reading): a file is then read again only if it changed, and one made bad keeps the keys
    read before, as between two SIGHUPs (it failed the whole re-reading, evidence included: second review #14),
    and a URL's cached set and fetch bound stay."""
    if issuer.jwks_file:
        if isinstance(before, FileKeys) and before.path == Path(issuer.jwks_file):
            before.reload()
            return before
        return FileKeys(issuer.jwks_file, issuer.iss)
    if isinstance(before, UrlKeys) and before.url == str(issuer.jwks_url):
        return before
    return UrlKeys(str(issuer.jwks_url), issuer.iss)


class Verifier:
    """Checks CDS Hooks JWTs against the configured issuers (their keys: :mod:`.keysets`)."""

    def __init__(self, config: Config, previous: Verifier | None = None) -> None:
        self.config = config
        self.issuers: dict[str, Issuer] = {i.iss: i for i in config.issuers}
        before = previous.key_sets if previous is not None else {}
        self.key_sets: dict[str, FileKeys | UrlKeys] = {i.iss: _key_set(i, before.get(i.iss)) for i in config.issuers}
        self.replays = ReplayStore(Path(config.state_dir) / REPLAY_FILE)

    def key_set_status(self) -> dict[str, int]:
        """How many URL issuers' key sets are ``ok``, ``stale``, ``unavailable`` or ``not fetched``
        (:meth:`.keysets.UrlKeys.status`), for the health check: counts, no issuer named."""
        counts: dict[str, int] = {}
        for ks in self.key_sets.values():
            if isinstance(ks, UrlKeys):
                counts[ks.status()] = counts.get(ks.status(), 0) + 1
        return counts

    def _key(self, issuer: Issuer, kid: str) -> jwt.PyJWK:
        try:
            return self.key_sets[issuer.iss].key(kid)
        except UnknownKey:
            raise AuthError("the token's kid is not a key of its issuer") from None

    def verify(self, authorization: str | None, audiences: list[str]) -> dict:
        """The verified claims of the ``Authorization`` header for an endpoint whose URLs are ``audiences``.

        Raises
        ------
        AuthError
            With the reason (missing, malformed, unknown issuer or key, bad signature, wrong audience, expired,
            issued in the future, too long-lived, replayed).
        """
        if not authorization:
            raise AuthError("no Authorization header; a CDS Hooks JWT is required (Authorization: Bearer <JWT>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header is not 'Bearer <JWT>'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("the token is not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.config.algorithms:
            raise AuthError(f"alg {str(alg)[:10]!r} is not accepted; allowed: {', '.join(self.config.algorithms)}")
        if not isinstance(kid, str) or not kid:
            raise AuthError("the token has no kid")
        typ = header.get("typ")
        # case-insensitive, and with its media type's prefix (RFC 7515 section 4.1.9: 'application/jwt' is 'JWT')
        if typ is not None and not (isinstance(typ, str) and typ.upper().removeprefix("APPLICATION/") == "JWT"):
            raise AuthError("typ must be JWT")
        for claim in ("exp", "iat", "nbf"):
            if claim in unverified and not _numeric_date(unverified[claim]):
                raise AuthError(f"{claim} must be a NumericDate (seconds since 1970, a number up to "
                                f"{MAX_NUMERIC_DATE})")
        issuer = self.issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise AuthError("the token's issuer is not configured")
        # a URL issuer's jku must be its URL; a file issuer's keys are its file's, whatever jku names (never fetched)
        if "jku" in header and issuer.jwks_url is not None and not same_url(header["jku"], issuer.jwks_url):
            raise AuthError("the token's jku is not the configured JWK Set URL of its issuer")
        key = key_for(self._key(issuer, kid), alg)
        skew = self.config.clock_skew_seconds
        try:
            claims = jwt.decode(token, key=key, algorithms=[alg], audience=audiences, issuer=issuer.iss, leeway=skew,
                                options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.InvalidAudienceError:
            raise AuthError("aud is not the URL of this endpoint") from None
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token is not yet valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the signature does not verify with the issuer's key") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"the token is not valid ({type(exc).__name__})") from None
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti.strip():  # an empty jti was taken once, then shared by every such token
            raise AuthError("the token's jti is empty; each token needs a unique jti")
        now = time.time()
        iat, exp = float(claims["iat"]), float(claims["exp"])
        if iat > now + skew:
            raise AuthError("the token was issued in the future")
        if exp - iat > self.config.max_token_lifetime_seconds:
            raise AuthError(f"the token lives longer than {self.config.max_token_lifetime_seconds} s")
        if not self.replays.first_use(issuer.iss, jti, exp):
            raise AuthError("the token's jti has been used before (replay)")
        return claims
