"""What the service keeps: the reports its cards link to (expiring) and the feedback log (append-only).

Reports: a card's link is ``/reports/<id>`` with an unguessable id (128 bits); what the report needs (the
patient's findings and what the record did not say) is written to ``<state>/reports/<id>.json`` (mode 0600,
in a 0700 folder) so that any worker can render it, and deleted once it expires. The HTML is rendered on
the first request and kept beside it until the same expiry. Beside each record, ``<card uuid>.card`` says that
the card is this service's, and until when (its feedback window: at least the report's life, 30 days by
default), so that any worker can tell a card it issued (:meth:`Reports.issued`: the feedback endpoint takes
outcomes of those only) after its report has gone (until s17 the card file went with the report, and a card
dismissed after an hour was refused as unknown). It holds no finding and names no report: only its expiry.

Feedback: one JSON line per answer given (``palsy.model.registry_feedback.answer_entry``: the card's id,
the salted patient hash, the findings as categories, P(cause) and the model) and one per card outcome,
appended to ``<state>/feedback.jsonl`` under an exclusive lock (filelock's, portable: until 5 December
``fcntl``'s, so the service could not start on Windows), flushed and fsync'd before the request is answered;
the file is opened for appending only and never rewritten (an append that fails part-way, on a full disk, is
cut back to where it began, so the log never holds a torn line). It holds no name, record id or date of birth;
free-text comments are not stored (they may hold patient data): only whether there was one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import filelock

#: The state folder's members (the served reports, the feedback log and its lock, the replay store of
#: :mod:`palsy.scripts.serve.auth`): named here once, for the stores and for the check before a port opens.
REPORTS_DIR, FEEDBACK_FILE, FEEDBACK_LOCK, REPLAY_FILE = "reports", "feedback.jsonl", ".feedback.jsonl.lock", "jti.sqlite"
#: How often a worker waiting for the feedback log's lock tries it again (an append holds it well under 1 ms).
POLL_SECONDS = 0.001
ID = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
#: The suffix of a card's file (``<card uuid>.card``: its record's id). Not ``.json``: a card's uuid is logged and
#: sent to the record system, and must never open a report (a record's id is its key).
CARD_SUFFIX = ".card"


class Reports:
    """Report records in a folder, each with an expiry, and the cards they were made for, each with its own
    (``card_ttl_seconds``, at least the reports': the feedback window)."""

    def __init__(self, state_dir: str | Path, ttl_seconds: int, card_ttl_seconds: int | None = None) -> None:
        self.folder = Path(state_dir) / REPORTS_DIR
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.ttl = ttl_seconds
        self.card_ttl = max(card_ttl_seconds or 0, ttl_seconds)
        self._last_purge = 0.0
        self._purge_lock = threading.Lock()

    def put(self, record: dict[str, Any], card: str | None = None) -> str:
        """Store ``record`` (made for the card ``card``, a UUID, when given: see :meth:`issued`); return its new id."""
        rid = secrets.token_urlsafe(16)
        now = time.time()
        data = json.dumps({"expires": now + self.ttl, **record, **({"card": card} if card else {})})
        self._write(f"{rid}.json", data.encode("utf-8"))
        if card:
            self._write(_card_file(card), json.dumps({"expires": now + self.card_ttl}).encode("ascii"))
        self.purge()
        return rid

    def _write(self, name: str, data: bytes) -> None:
        fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def issued(self, card: str) -> bool:
        """Whether ``card`` (a UUID, in any case) is a card of this service within its feedback window: its card
        file is there and unexpired. False for any other text. A card file of a version before s17 (its report's
        id) expires by its file's time."""
        return self.issued_at(card) is not None

    def issued_at(self, card: str) -> float | None:
        """When ``card`` was issued (its card file's time, seconds since 1970) when it is a card of this service
        within its feedback window (:meth:`issued`); None otherwise."""
        try:
            path = self.folder / _card_file(card)
            text = path.read_text(encoding="ascii")
            made = path.stat().st_mtime
            expires = json.loads(text)["expires"] if text.startswith("{") else made + self.card_ttl
        except (ValueError, OSError, UnicodeDecodeError, KeyError, TypeError):
            return None
        return made if isinstance(expires, (int, float)) and expires >= time.time() else None

    def get(self, rid: str) -> dict[str, Any] | None:
        """The record of ``rid``, or None when unknown, malformed or expired (an expired one is deleted)."""
        if not ID.match(rid or ""):
            return None
        path = self.folder / f"{rid}.json"
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if rec.get("expires", 0) < time.time():
            self._delete(rid)
            return None
        return rec

    def html(self, rid: str) -> bytes | None:
        try:
            return (self.folder / f"{rid}.html").read_bytes()
        except OSError:
            return None

    def put_html(self, rid: str, html: bytes) -> None:
        tmp = self.folder / f".{rid}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(html)
        os.replace(tmp, self.folder / f"{rid}.html")

    def _delete(self, rid: str) -> None:
        for suffix in (".json", ".html"):
            try:
                (self.folder / f"{rid}{suffix}").unlink()
            except OSError:
                pass

    def purge(self) -> threading.Thread | None:
        """Start deleting expired reports (at most once a minute) in a thread of its own, and return it (None
        when the last purge was less than a minute ago). No request waits for it: until 5 December the request
        that came a minute after the last purge read every record first (0.4 s for 6,000 on 2 cores, and a
        memoised load of 200 cards a second writes that many in half a minute)."""
        now = time.time()
        with self._purge_lock:
            if now - self._last_purge < 60:
                return None
            self._last_purge = now
        thread = threading.Thread(target=self.delete_expired, args=(now,), name="palsy-reports-purge", daemon=True)
        thread.start()
        return thread

    def delete_expired(self, now: float) -> int:
        """Delete the reports written more than the expiry before ``now``, each record with its HTML (rendered
        later, so newer: it never outlives its record), the card files written more than their feedback window
        before it, and any other file older than the reports' expiry (a write that never finished); return how
        many files were deleted. A file is written once and expires its expiry after it was made, so its time is
        never later than that: nothing is deleted before it expires (:meth:`get` still reads the expiry itself)."""
        deleted = 0
        try:
            with os.scandir(self.folder) as entries:
                old = [e for e in entries if e.is_file(follow_symlinks=False)
                       and _mtime(e) + (self.card_ttl if e.name.endswith(CARD_SUFFIX) else self.ttl) < now]
        except OSError:
            return 0
        for entry in old:
            names = [f"{entry.name[:-5]}.json", f"{entry.name[:-5]}.html"] if entry.name.endswith(".json") \
                else [entry.name]
            for name in names:
                try:
                    os.unlink(self.folder / name)
                    deleted += 1
                except OSError:  # not there (no HTML yet), or deleted meanwhile (by get, another worker's purge)
                    continue
        return deleted


def _card_file(card: str) -> str:
    """The file name of a card's record link: its canonical UUID (ValueError for anything that is not a UUID,
    so a client's text never names a file)."""
    return f"{uuid.UUID(card)}{CARD_SUFFIX}"


def _mtime(entry: os.DirEntry) -> float:
    """The file's modification time, or infinity when it is gone (never old enough to delete)."""
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return float("inf")


class FeedbackLog:
    """The append-only JSON-lines log of card outcomes."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / FEEDBACK_FILE
        # the workers append one at a time under filelock's lock (flock on POSIX, msvcrt on Windows), and a
        # worker's threads queue for it on a lock of their own: filelock waits by polling, and twenty threads
        # polling every 50 ms (its default) left some requests waiting seconds under load; one poller per
        # worker, every millisecond, waits no longer than the append it waits for
        self.lock = filelock.FileLock(str(self.path.with_name(FEEDBACK_LOCK)))
        self._threads = threading.Lock()

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` (one line each) durably: written, flushed and fsync'd before returning."""
        data = b"".join(json.dumps(e, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n" for e in entries)
        with self._threads, self.lock.acquire(poll_interval=POLL_SECONDS):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
            try:
                start = os.lseek(fd, 0, os.SEEK_END)  # every writer appends under the lock: the log ends here
                try:
                    view = memoryview(data)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    os.fsync(fd)
                except BaseException:
                    # a write that failed part-way (a full disk, a file-size limit) leaves no torn line for the
                    # next append to glue onto: until 6 December it did, and ``palsy registry from-feedback``
                    # then refused the whole log (s16 review S8). The request is answered 500: not on the log.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                        os.fsync(fd)
                    raise
            finally:
                os.close(fd)
