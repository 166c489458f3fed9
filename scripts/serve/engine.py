"""The model, loaded once per worker, and answers memoised per canonical patient.

A card shows the differential, the decision, the actions and the atypicality check, not the contributions,
the Shapley values, the next tests or what the answer rests on: a card's answer (:meth:`Engine.card`) is the
brief answer (:func:`palsy.model.brief.brief`), which computes only what a card shows, with the numbers of
the full answer bit for bit (tests/test_brief.py; a service test compares the card with ``palsy
posterior``). A new patient's card then costs about 10-12 ms of CPU in process against about 20 ms for the
full answer without the Shapley values (measured 6 December, docs/service.md). Whether a record's card is
memoised is known from the prefetch's key alone (:meth:`Engine.answered`): the service answers memoised cards
in a lane of their own. The full answer (:meth:`Engine.answer`) is computed for the report a card links to,
when the clinician opens it.

An answer depends only on the patient's findings and the settings, all fixed per worker; it is seeded, so a
memoised answer is the answer a fresh computation gives. Every patient here comes from a record, and a
record is never one of palsy's library cases: no answer leaves a case out (PSIS leave-one-out is for the
library's own patients, ``palsy posterior --patient patients/source-001.yaml``). Until 5 December a record
whose Patient.id was a library case's id (``source-001``) was answered with that case left out, whatever
its findings. The memo is a bounded LRU per worker (``answer_cache_size`` answers), and
concurrent requests for the same patient compute it once. The prefetch's mappings have a memo of their own
of the same size, so that they never push answers out; it keeps only what the service reads of each
(:class:`Mapped`, a few kB), never the resources a record held.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from palsy.model import answer as A
from palsy.model import brief as B
from palsy.model import decision, guidance
from palsy.model import evidence as E
from palsy.model import fhir as X
from palsy.model import findings as F
from palsy.scripts.commands import common
from palsy.scripts.serve.config import Config

#: The most bytes (as JSON) a memoised mapping may hold: one patient's findings and notes take under 1 kB.
MAX_MAPPING_BYTES = 32 * 1024
#: glibc's allocator: arrays from this size are still taken from the heap (not a fresh mmap each), and freed
#: memory up to this much is kept for the next answer (mallopt's M_MMAP_THRESHOLD, its maximum on 64 bits, and
#: M_TRIM_THRESHOLD).
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 * 1024 * 1024, 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Let this process reuse the memory of its answers' large arrays instead of returning it to the system
    after each (glibc only; False elsewhere, where nothing changes).

    An answer allocates and frees arrays of a few megabytes (every draw, component and cause); glibc serves each
    with a fresh mmap, whose pages the kernel faults in and zeroes again: about 5,300 page faults and 11 ms of
    system time per new patient's card, a third of its cost (measured 6 December: 54 ms -> 34-36 ms of CPU per
    card, one thread). The price is a worker that keeps its peak heap (a few hundred megabytes) instead of
    shrinking between requests.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


#: The files of the evidence folder read beside the draws that change a card (not in the evidence hash).
ANSWER_FILES = ("decision.yaml", "actions.yaml")


def model_id(meta: dict[str, Any], pdir: Any) -> str:
    """The identity of what answers a card: the draws' evidence hash and cache entry, and the bytes of
    :data:`ANSWER_FILES` (16 hex digits)."""
    h = hashlib.sha256(json.dumps([meta.get("evidence_hash"), meta.get("cache_entry")], sort_keys=True,
                                  default=str).encode("utf-8"))
    for name in ANSWER_FILES:
        try:
            h.update((Path(pdir) / name).read_bytes())
        except OSError:
            h.update(b"<none>")
    return h.hexdigest()[:16]


def give_back_memory() -> bool:
    """Return the heap's free memory to the system (glibc's ``malloc_trim(0)``; False elsewhere): after a large
    record, whose parsing took tens of megabytes that :func:`keep_freed_memory` would otherwise keep (a worker
    stayed at 777 MB after 31 records of 4 MB, second review of s17 #7). An answer's arrays come back at the next
    new patient's card, once."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(trim(0))


@dataclasses.dataclass(frozen=True)
class Mapped:
    """What the service reads of a record's mapping (:class:`palsy.model.fhir.FhirMapping`), and all its memo
    keeps: the findings, what the record did not say, the notes, the onset and whether a card is due. Not the
    resources left unread (``ignored``, one entry each): until 5 December the memo kept whole mappings, about
    0.46 MB each for a 176 kB prefetch of unread resources, 4,096 of them per worker."""

    patient: dict[str, Any]
    not_found: tuple[str, ...]
    notes: tuple[str, ...]
    onset: str | None
    has_palsy: bool
    has_leukaemia: bool
    record_id: str | None = None  # the record's Patient.id (the patient's own id is Patient/<it>)
    record_ids: tuple[str, ...] = ()  # every id of the patient: linked Patients (a merged record), record_id first
    merged_ids: tuple[str, ...] = ()  # the ids a hook may name: record_id and those it replaces or is replaced by

    @classmethod
    def of(cls, m: X.FhirMapping) -> Mapped:
        return cls(patient=m.patient, not_found=tuple(m.not_found), notes=tuple(m.notes), onset=m.onset,
                   has_palsy=m.has_palsy, has_leukaemia=m.has_leukaemia, record_id=m.record_id,
                   record_ids=tuple(m.record_ids), merged_ids=tuple(m.merged_ids))

    def size(self) -> int:
        """Its size as JSON, in bytes (what its memo entry holds, within a small factor)."""
        return len(json.dumps([self.patient, self.not_found, self.notes], default=str))


@dataclasses.dataclass
class Engine:
    """Everything an answer needs, loaded once: draws, their tables, decision settings, actions, evidence."""

    draws: Any
    tables: A.Tables
    decision_settings: Any
    guidance: tuple
    evidence: Any
    fhir_table: X.Table
    cache_size: int
    load_seconds: float
    _cache: OrderedDict = dataclasses.field(default_factory=OrderedDict)
    _mappings: OrderedDict = dataclasses.field(default_factory=OrderedDict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _inflight: dict = dataclasses.field(default_factory=dict)
    # one card's answer at a time per worker: answers computed side by side in threads cost about half as much
    # CPU again each (the GIL, the caches: 50 ms against 34 ms per card, measured 6 December), and a burst is
    # answered sooner first come, first served than all at once
    _answering: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    hits: int = 0
    misses: int = 0
    #: What answered: the draws' cache entry and evidence hash, and the decision and action files (which change a
    #: card without a refit), hashed; a card's record keeps it, so that its report says when another model answers.
    model_id: str = ""

    @classmethod
    def load(cls, config: Config) -> Engine:
        """Load the cached posterior of the configured variant (fitting it if the cache is cold) and the rest."""
        t = time.perf_counter()
        keep_freed_memory()
        args = argparse.Namespace(variant=config.variant, priors=config.priors, json=True)
        pdir = common.priors_dir(args)
        draws = common.load_draws(args)
        return cls(draws=draws, tables=A.Tables(draws), decision_settings=decision.load(pdir),
                   guidance=guidance.load(pdir, draws.causes), evidence=E.load(pdir), fhir_table=X.load_table(pdir),
                   cache_size=config.answer_cache_size, load_seconds=time.perf_counter() - t,
                   model_id=model_id(draws.meta, pdir))

    def key(self, patient: F.Patient) -> str:
        """The canonical patient: its findings (nothing else changes an answer; its id does not, since no
        patient of a record is answered as a library case)."""
        d = patient.to_dict()
        d.pop("id", None)
        d.pop("description", None)
        return json.dumps({"findings": d}, sort_keys=True)

    def fresh(self, patient: F.Patient) -> A.Answer:
        """The answer computed now, exactly as ``palsy posterior --fhir`` computes it (default settings), and
        never with a library case left out, whatever the patient's id (a record is not a library case)."""
        return A.answer(patient, self.draws, tables=self.tables, decision_settings=self.decision_settings,
                        guidance=self.guidance, leave_out=False)

    @staticmethod
    def bundle_key(prefetch_bundle: dict) -> str:
        """The key of a prefetch bundle's mapping in the memo: the SHA-256 of its canonical JSON."""
        text = json.dumps(prefetch_bundle, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def answered(self, bundle_key: str) -> bool:
        """Whether the card of the record with this :meth:`bundle_key` is memoised (its mapping and its answer),
        without moving either in its memo. A request whose card is memoised is answered in the service's lane
        of memoised cards, never behind a new patient's answer (docs/service.md)."""
        with self._lock:
            m = self._mappings.get(bundle_key)
        if m is None:
            return False
        try:
            patient = F.parse_patient(m.patient, "prefetch", schema=self.draws.schema)
        except F.InputError:
            return False
        with self._lock:
            return "card:" + self.key(patient) in self._cache

    def mapped(self, prefetch_bundle: dict, key: str | None = None) -> Mapped:
        """What the service reads of a prefetch bundle's mapping, memoised on the bundle's canonical JSON (the
        same record maps the same way; the mapping is pure and dated by the record itself, not by the clock,
        when the palsy has an onset); ``key``: its :meth:`bundle_key` when already computed."""
        key = key or self.bundle_key(prefetch_bundle)
        with self._lock:
            hit = self._mappings.get(key)
            if hit is not None:
                self._mappings.move_to_end(key)
                return hit
        m = Mapped.of(X.map_bundle(prefetch_bundle, self.fhir_table, source="prefetch"))
        # without an onset its time windows end today; a mapping whose notes are many is not kept either
        if self.cache_size and m.onset is not None and m.size() <= MAX_MAPPING_BYTES:
            with self._lock:
                self._mappings[key] = m
                while len(self._mappings) > self.cache_size:
                    self._mappings.popitem(last=False)
        return m

    def card(self, patient: F.Patient) -> dict[str, Any]:
        """The JSON of the card's answer (:func:`palsy.model.brief.brief`: what a card shows, the numbers of
        :meth:`fresh`), memoised; the patient's own fields put back."""
        def compute() -> dict[str, Any]:
            with self._answering:
                return B.brief(patient, self.draws, tables=self.tables, decision_settings=self.decision_settings,
                               guidance=self.guidance)

        d = self._memo("card:" + self.key(patient), compute)
        return {**d, "patient": patient.to_dict()}

    def answer(self, patient: F.Patient) -> A.Answer:
        """The full answer for ``patient`` (the report's): memoised per canonical patient."""
        return dataclasses.replace(self._memo("full:" + self.key(patient), lambda: self.fresh(patient)),
                                   patient=patient)

    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` memoised under ``key`` (a bounded LRU), computed once under concurrency."""
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.hits += 1
                return self._cache[key]
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._cache:
                    self.hits += 1
                    return self._cache[key]
            value = compute()
            with self._lock:
                self.misses += 1
                if self.cache_size:
                    self._cache[key] = value
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
                self._inflight.pop(key, None)
        return value

    def model_info(self) -> dict[str, Any]:
        m = self.draws.meta
        return {"variant": self.draws.variant, "draws": int(self.draws.n), "evidence_hash": m["evidence_hash"],
                "version": m["version"], "model_id": self.model_id}
