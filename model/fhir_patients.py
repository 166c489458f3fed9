"""Whose record a FHIR bundle is, as :mod:`palsy.model.fhir` reads it: its one Patient, or Patients joined by
``Patient.link`` (a merged record), each known by its server and its id (an id is unique only on its own server), the
record named by the surviving one, and every subject reference read to the Patient it names (split from ``fhir.py``,
session 17)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from palsy.model import safe_yaml as Y
from palsy.model.fhir_dates import parse_when

#: ``Type/id`` at the end of a reference (relative, or after an absolute URL's server base).
REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9.\-]{1,64})$")
#: FHIR R4 link-type: each says that the other Patient resource concerns the same patient.
LINK_TYPES = ("replaced-by", "replaces", "refer", "seealso")

#: A Patient as the bundle names it: (server base, id). The base is '' for the bundle's own server: a relative
#: reference, or the one server base of the bundle's Patient entries.
Key = tuple[str, str]


#: The port a scheme's URLs name when they name none (RFC 3986 §6.2.3: ``https://host:443/fhir`` is
#: ``https://host/fhir``).
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def no_history(reference: str) -> str:
    """A reference without its version, its scheme and host in lower case (they are case-insensitive) and without
    its scheme's default port (one server: a record that wrote ``https://host:443/fhir`` beside ``https://host/fhir``
    had its results read as another server's, s18 review)."""
    reference = re.sub(r"/_history/[^/]*$", "", reference)
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(.*)$", reference)
    if not m:
        return reference
    scheme, host = m.group(1).lower(), m.group(2).lower()
    port = _DEFAULT_PORTS.get(scheme)
    if port and host.endswith(port):
        host = host[:-len(port)]
    return f"{scheme}://{host}{m.group(3)}"


#: An entry's RESTful fullUrl (R4 Bundle, "Resolving references in Bundles": http or https, ``[base]/Type/id``, a
#: version allowed): the base is the server its relative references are read on.
_RESTFUL = re.compile(r"^(https?://[^?#]+?)/[A-Z][A-Za-z]+/[A-Za-z0-9.\-]{1,64}(?:/_history/[A-Za-z0-9.\-]{1,64})?$",
                      re.IGNORECASE)


def entry_base(where: str) -> str:
    """The server base of an entry whose fullUrl is a RESTful URL (a contained resource's, ``fullUrl#id``: its
    container's), on which R4 reads the entry's relative references; '' for any other fullUrl (relative,
    ``urn:uuid:``) or a position (``entry[3]``)."""
    m = _RESTFUL.match(where.split("#", 1)[0])
    return no_history(m.group(1)) if m else ""


def _patient_read_on(value: Any, where: str, urls: Mapping[str, Key]) -> tuple[str, str, bool] | None:
    """A subject or patient Reference (in the entry ``where``) written as ``[base/]Patient/<id>``: the server it is
    read on (an absolute one's base; a relative one's entry's, ``entry_base``: '' when the entry gives none), the
    id, and whether it was absolute. None for any other (an entry's fullUrl in ``urls``, ``urn:``, a fragment,
    another type, an identifier): :meth:`Who.key_of`, :meth:`Who.untied` and :func:`_servers_named` read them alike."""
    text = value.get("reference") if isinstance(value, Mapping) else None
    if not isinstance(text, str):
        return None
    text = no_history(text)
    m = REFERENCE.search(text)
    if text in urls or text.startswith(("urn:", "#")) or m is None or m.group(1) != "Patient":
        return None
    absolute = "://" in text
    return (text[:m.start()] if absolute else entry_base(where)), m.group(2), absolute


def server_of(where: str, rt: str, rid: str) -> str:
    """The server base of an absolute fullUrl ('' for a relative one or another form): an id is unique only on its
    own server."""
    m = re.match(rf"^(.*)/{re.escape(rt)}/{re.escape(rid)}(?:/_history/[^/]*)?$", where)
    return no_history(m.group(1)) if m and "://" in where else ""


class NotOnePatient(Exception):
    """The bundle is not one patient's record: the problems, in words (:func:`the_patient`)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class Link:
    """One ``Patient.link`` that joins two of this patient's Patients: from ``a``, of ``kind``, to ``b``."""

    a: Key
    kind: str
    b: Key


@dataclasses.dataclass(frozen=True)
class Who:
    """The bundle's one patient.

    Attributes
    ----------
    id : str or None
        The record's id: of linked Patients, the surviving one's (:func:`_survivor`).
    key : Key or None
        The record's (server, id).
    keys : tuple of Key
        Every Patient that is this patient's: those of the bundle (in its order), then those a link names.
    bases : frozenset of str
        The server bases of the bundle's absolute Patient fullUrls (when there is one, it is this server's: its
        Patients' keys carry '').
    urls : dict
        The fullUrl of each of the bundle's Patient entries: its key.
    identifiers : frozenset of tuple
        The Patients' identifiers (system, value).
    ids : tuple of str
        The ids a CDS Hooks ``context.patientId`` may name, ``id`` first: this server's Patients only (a link to
        another server's Patient names an id that is not this server's).
    patients : tuple
        (key, resource) of each Patient resource in the bundle.
    clear : bool
        Whether the surviving record is singled out by ``replaced-by``/``replaces`` links with no mark against it
        (R4 link-type: the other "must no longer be used"): its birth date then stands over the others'.
    links : tuple of Link
        The links that join the Patients.
    note : str or None
        When the Patients are several, the note that says how they were read.
    other_servers : tuple of str
        The links to another server's Patient, as written: not followed (:func:`the_patient`).
    home : str or None
        In a bundle whose Patients give no server (no absolute fullUrl), the one server the record's references to
        them name (absolute, or relative in an entry of a RESTful fullUrl): theirs. None when none names one, or
        several do (:attr:`unsure`).
    unsure : tuple of str
        In a bundle whose Patients give no server, the servers its references to them name when they are more than
        one: which is the Patient's cannot be told, so a reference read on any of them is not tied to the patient
        (:meth:`untied`).
    merged_ids : tuple of str
        The ids a hook's ``context.patientId`` may name as this record (``id`` first when it is one): those of the
        bundle's own Patients on this server (a prefetch holds the one it asked for) and of this server's Patients
        joined to them by ``replaces``/``replaced-by`` links (a merge); not those joined by ``seealso`` or ``refer``
        only (another person's record may be linked so, in error or across organisations: a second review of s17,
        #3).
    """

    id: str | None
    key: Key | None
    keys: tuple[Key, ...]
    bases: frozenset[str]
    urls: dict[str, Key]
    identifiers: frozenset[tuple[str, str]]
    ids: tuple[str, ...] = ()
    patients: tuple[tuple[Key, dict[str, Any]], ...] = ()
    clear: bool = False
    links: tuple[Link, ...] = ()
    note: str | None = None
    other_servers: tuple[str, ...] = ()
    merged_ids: tuple[str, ...] = ()
    home: str | None = None
    unsure: tuple[str, ...] = ()

    def name(self, key: Key) -> str:
        """How the record names a Patient: ``Patient/<id>``, with its server when it is not this one."""
        return _name(key)

    def _canonical(self, server: str) -> str:
        if (len(self.bases) == 1 and server in self.bases) or (not self.bases and server and server == self.home):
            return ""
        return server

    def key_of(self, value: Any, where: str = "") -> Key | None:
        """The Patient of this patient's that a Reference in the entry ``where`` (its fullUrl) names (None when it
        names none of them). A relative reference is read on its entry's server when its fullUrl is a RESTful URL
        (R4 Bundle, "Resolving references in Bundles"), else on this server."""
        text = value.get("reference") if isinstance(value, Mapping) else None
        if not isinstance(text, str):
            ident = value.get("identifier") if isinstance(value, Mapping) else None
            if isinstance(ident, Mapping) and (str(ident.get("system")), str(ident.get("value"))) in self.identifiers:
                return self.key
            return None
        text = no_history(text)
        if text in self.urls:
            return self.urls[text]
        read = _patient_read_on(value, where, self.urls)
        if read is None:
            return None
        server, pid = self._canonical(read[0]), read[1]
        if (server, pid) in self.keys:
            return server, pid
        if server == "":  # a relative reference of an entry without a server: this server's, whichever that is
            return next((k for k in self.keys if k[1] == pid and (not k[0] or k[0] in self.bases)), None)
        # a reference read on a server in a bundle whose Patients give none is this one's only when it is the one
        # server the record names for them (home, through _canonical); several: not tied (untied)
        return None

    def untied(self, value: Any, where: str = "") -> str | None:
        """Why a Reference in the entry ``where`` that names one of this patient's ids cannot be tied to this
        patient, in words; None when it can be, or when it names another id (:meth:`problem` says what that is).

        Such a reference is read on a server that is not the Patient's: a relative one in an entry whose RESTful
        fullUrl names another server (R4 reads it on that server, where Patient/<id> may be another person: a
        bundle holding entries of two servers, each with a Patient/1, had read the second server's resources as
        this patient's), or, in a bundle whose Patients give no server, any reference read on one of several
        servers (:attr:`unsure`). Behind a proxy one server may be named by two bases: such a resource is this
        patient's but cannot be told from another's, so it is not read, never refused (an absolute reference to
        another server's Patient of this id still refuses the record: :meth:`problem`)."""
        read = _patient_read_on(value, where, self.urls)
        if read is None:
            return None
        server, pid, absolute = read
        if pid not in {k[1] for k in self.keys} or self.key_of(value, where) is not None or not server:
            return None
        if self.unsure:
            return (f"names Patient/{pid} on one of {len(self.unsure)} servers ({', '.join(self.unsure)}) that the "
                    f"record's references to the patient are read on, while its Patient gives none (no absolute "
                    f"fullUrl): whose record it is cannot be told; give the Patient's fullUrl")
        if absolute:
            return None
        return (f"names Patient/{pid} at {server} (a relative reference, read on its entry's server: the base of its "
                f"fullUrl), not at the Patient's server "
                f"({', '.join(sorted(self.bases))}): it may be another patient's; if the two are one server behind a "
                f"proxy, send the record with one base")

    def problem(self, value: Any, where: str = "") -> tuple[str | None, bool]:
        """Why a Reference in the entry ``where`` is not to this patient (None when it is), and whether it names
        another Patient. A relative, absolute or entry reference is read to its server and id (a relative one on
        its entry's server: :meth:`key_of`); an identifier alone counts only when it is one of the Patients'. A
        reference :meth:`untied` names is not judged here."""
        if not isinstance(value, dict):
            return "is not a Reference", False
        if value.get("type") is not None and str(value["type"]).rsplit("/", 1)[-1] != "Patient":
            return f"is a reference to a {Y.brief(value.get('type'))}, not to a Patient", False
        text = value.get("reference")
        if isinstance(text, str):
            text = no_history(text)
            m = REFERENCE.search(text)
            if text not in self.urls and (m is None or text.startswith("urn:")):
                return "is not the bundle's Patient (neither its entry nor Patient/<id>)", False
            if m is not None and m.group(1) != "Patient" and text not in self.urls:
                return f"is a reference to a {m.group(1)}, not to the Patient", False
            if self.key_of(value, where) is not None:
                return None, False
            base, pid = (text[:m.start()] if "://" in text else ""), m.group(2)
            if base and self.bases and self._canonical(base) and pid in self.ids:
                # this patient's id at another server: both servers' bases named (no patient id), since behind a proxy
                # a record can mix http://host:8080/fhir with https://host/fhir, which its integration engineer can
                # then set right
                return (f"is a Patient of another server ({base}; the bundle's Patient is at "
                        f"{', '.join(sorted(self.bases))})"), True
            if text in self.other_servers:
                return (f"is another patient: another server's ({text}), which the record's Patient.link names; a link "
                        f"to another server's Patient is not followed"), True
            elsewhere = [t for t in self.other_servers if t.endswith(f"/Patient/{pid}")]
            elsewhere += [self.name(k) for k in self.keys if k[1] == pid and k[0] and k[0] not in self.bases]
            if elsewhere and not base:
                return (f"is another patient: this server's Patient/{pid}, where the record's Patient.link names "
                        f"another server's ({', '.join(dict.fromkeys(elsewhere))})"), True
            return "is another patient", True
        ident = value.get("identifier")
        if isinstance(ident, dict):
            if (str(ident.get("system")), str(ident.get("value"))) in self.identifiers:
                return None, False
            return "gives only an identifier that is not one of the Patient's: whose record it is cannot be told", False
        return "names no patient (no reference and no identifier)", False


def _name(key: Key) -> str:
    return f"{key[0] + '/' if key[0] else ''}Patient/{key[1]}"


def the_patient(entries: list[tuple[str, dict[str, Any]]]) -> Who:
    """The bundle's one patient: its Patient resource, or several joined by ``Patient.link`` (a merged record).

    Each Patient is known by its server and id: two servers' Patients of one id are two Patients (since fc9f2fd
    :func:`palsy.model.fhir._latest_versions` keeps them apart too; until s17 the second was dropped unread). A link
    in either direction joins two Patients; every Patient of the bundle must be joined to the others, and a Patient a
    link names that the bundle does not hold is this patient's too. A link is read to the server it names: a relative
    one is the linking Patient's server; an absolute one to a server other than the bundle's Patients' is not followed
    (an id is unique only on its own server: a link to a master index's Patient/777 had made this server's
    Patient/777, another person, this patient's); in a bundle whose Patients give no server, an absolute link joins
    only references written with its server. The record is named by the surviving Patient (:func:`_survivor`).

    Raises
    ------
    NotOnePatient
        The bundle holds no Patient, or Patients not joined by a link (or several, one of them without an id).
    """
    pats = [(w, r) for w, r in entries if r.get("resourceType") == "Patient"]
    if not pats:
        raise NotOnePatient(["the bundle holds no Patient resource; give the patient the findings are about"])
    bases = frozenset(s for w, r in pats if isinstance(r.get("id"), str) and (s := server_of(w, "Patient", r["id"])))
    home = next(iter(bases)) if len(bases) == 1 else None

    def canonical(server: str) -> str:
        return "" if server == home else server

    first: dict[Key, dict[str, Any]] = {}
    urls: dict[str, Key] = {}
    for w, r in pats:
        rid = r.get("id") if isinstance(r.get("id"), str) else ""
        key = (canonical(server_of(w, "Patient", rid)) if rid else "", rid)
        first.setdefault(key, r)
        if not re.fullmatch(r"entry\[\d+\]", w):  # a fullUrl, not a position
            urls[no_history(w)] = key
    if len(first) > 1 and any(not k[1] for k in first):
        raise NotOnePatient([f"the bundle holds {len(pats)} different Patient resources; give one patient's record"])
    links, other_servers = [], []
    for key, r in first.items():
        for lk in r.get("link") or []:
            if not (isinstance(lk, dict) and lk.get("type") in LINK_TYPES and key[1]):
                continue
            target, written = _link_target(lk.get("other"), key, urls, bases, canonical)
            if target is None:
                if written:
                    other_servers.append(written)
            elif target != key:
                links.append(Link(key, str(lk["type"]), target))
    group = _joined(next(iter(first)), links)
    if any(k not in group for k in first):
        ids = [k[1] for k in first]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        why = (f" (two servers' Patient/{', Patient/'.join(twice)}: an id is unique only on its own server)" if twice
               else " not all joined by Patient.link" if links else "")
        raise NotOnePatient([f"the bundle holds {len(first)} different Patient resources{why}; give one patient's "
                             f"record"])
    keys = tuple(dict.fromkeys([*first, *(k for lk in links for k in (lk.a, lk.b))]))
    idents = frozenset((str(i.get("system")), str(i.get("value"))) for r in first.values()
                       for i in r.get("identifier") or [] if isinstance(i, dict) and i.get("value"))
    mine = [k for k in keys if k[1] and (not k[0] or k[0] in bases)] or list(first)  # this server's: a hook names them
    record, why, clear = _survivor(list(keys), links, {k for k, r in first.items() if r.get("active") is False})
    if record not in mine:  # the surviving record is another server's (a link a bundle without a server followed)
        record, why, clear = mine[0], f"the surviving record is another server's, {_name(record)}", False
    # a bundle whose Patients give no server: theirs is the one server its references to them are read on, if one
    named = _servers_named(entries, keys, urls) if not bases else set()
    who = Who(record[1] or None, record, keys, bases, urls, idents, (), tuple(first.items()), clear, tuple(links),
              other_servers=tuple(other_servers), home=next(iter(named)) if len(named) == 1 else None,
              unsure=tuple(sorted(named)) if len(named) > 1 else ())
    ids = tuple(dict.fromkeys([record[1], *(k[1] for k in mine)])) if record[1] else ()
    merges = [lk for lk in links if lk.kind in ("replaces", "replaced-by")]
    merge = set().union(*(_joined(k, merges) for k in first if k in mine))
    merged = tuple(dict.fromkeys(k[1] for k in [record, *mine] if k in merge and k[1]))
    note = None
    if len(keys) > 1:
        said = ", ".join(dict.fromkeys(f"{who.name(lk.a)} {lk.kind} {who.name(lk.b)}" for lk in links))
        note = (f"the patient's record is {len(keys)} linked Patient records (Patient.link: {said}): read as one "
                f"patient, {who.name(record)} ({why}); resources referring to any of them are read as this patient's")
    return dataclasses.replace(who, ids=ids, note=note, merged_ids=merged)


def _servers_named(entries: list[tuple[str, dict[str, Any]]], keys: Iterable[Key], urls: Mapping[str, Key]) -> set[str]:
    """The servers on which the bundle's subject and patient references to its Patients of no server are read: an
    absolute reference's, a relative one's entry's (a RESTful fullUrl: :func:`entry_base`); not those of a Patient a
    link names with its server."""
    keys = set(keys)
    own = {pid for server, pid in keys if not server}
    out = set()
    for where, res in entries:
        if res.get("resourceType") == "Patient":
            continue
        for field in ("subject", "patient"):
            read = _patient_read_on(res.get(field), where, urls)
            if read is not None and read[1] in own and read[0] and (read[0], read[1]) not in keys:
                out.add(read[0])
    return out


def _link_target(other: Any, linking: Key, urls: Mapping[str, Key], bases: frozenset[str],
                 canonical: Any) -> tuple[Key | None, str | None]:
    """The Patient a ``Patient.link.other`` names, and the reference as written when it is not followed (another
    server's Patient); (None, None) for anything else (a RelatedPerson, an identifier alone). A relative reference is
    read on the linking Patient's server (R4 Bundle: a relative reference is resolved against its entry's base)."""
    text = other.get("reference") if isinstance(other, dict) else None
    if not isinstance(text, str):
        return None, None
    text = no_history(text)
    if text in urls:
        return urls[text], None
    m = REFERENCE.search(text)
    if m is None or m.group(1) != "Patient" or text.startswith("urn:"):
        return None, None
    if "://" not in text:
        return (linking[0], m.group(2)), None
    server = text[:m.start()]
    if bases and server not in bases:
        return None, text
    return (canonical(server), m.group(2)), None


def _joined(start: Key, links: Iterable[Link]) -> set[Key]:
    """The Patients joined to ``start`` by the links, in either direction (the link graph's component)."""
    near: dict[Key, set[Key]] = {}
    for lk in links:
        near.setdefault(lk.a, set()).add(lk.b)
        near.setdefault(lk.b, set()).add(lk.a)
    seen, todo = {start}, [start]
    while todo:
        for other in near.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


#: The marks that name the surviving record, in words, strongest first (:func:`_survivor`).
_MARKS = {"replaced": "its replaced-by and replaces links", "inactive": "active false", "refer": "refer"}
_AGAINST = {"replaced": "replaced by another too (the replaced-by and replaces links make a cycle)",
            "inactive": "marked active false", "refer": "pointing to another record as the main one (refer)"}
_CONTRADICT = {"replaced": "each is replaced by another", "inactive": "those not replaced are all active false",
               "refer": "each refers to another as the main one"}


def _survivor(keys: list[Key], links: list[Link], inactive: set[Key]) -> tuple[Key, str, bool]:
    """The record's Patient among ``keys`` (the bundle's in its order, then those its links name), why in words,
    and whether it is clear (:attr:`Who.clear`). By R4 link-type and Patient.active, in this order: not replaced
    (``replaced-by``, or named by another's ``replaces``: "must no longer be used"); not ``active`` false ("not in
    active use", which many systems also set on a record not seen for a while: it does not outrank a link); not
    pointing to the main record by ``refer`` ("not considered the main source of information"). When a mark would
    leave none, the marks contradict (a cycle of replaced-by, a survivor marked inactive): it is not applied, and
    said; when none is singled out, the first in the bundle, said (until s17 a replaces beside active false, and a
    cycle, were "not marked", and a refer named the record that is not the main one)."""
    replaced = {lk.a for lk in links if lk.kind == "replaced-by"} | {lk.b for lk in links if lk.kind == "replaces"}
    refers = {lk.a for lk in links if lk.kind == "refer"}
    left, by, against = list(keys), [], []
    for mark, marked in (("replaced", replaced), ("inactive", inactive), ("refer", refers)):
        kept = [k for k in left if k not in marked]
        if kept and len(kept) < len(left):
            left, by = kept, [*by, mark]
        elif not kept and (mark != "inactive" or by):
            # every record left carries the mark: a cycle of replaced-by (or refer), or a survivor marked inactive
            against.append(mark)
    record = left[0]
    if len(left) > 1:
        if against:
            return record, (f"their marks contradict ({' and '.join(_CONTRADICT[m] for m in against)}): named by the "
                            f"first in the bundle"), False
        return record, ("no one of them is marked as the surviving record (by replaced-by, replaces, refer or active "
                        "false): named by the first in the bundle"), False
    others = "the other is" if len(keys) == 2 else "the others are"
    if against:
        return record, (f"the surviving record by {' and '.join(_MARKS[m] for m in by)}, though it is "
                        f"{' and '.join(_AGAINST[m] for m in against)}: the marks contradict, and the stronger "
                        f"stands"), False
    if by == ["refer"]:
        return record, f"the main record: {others} not the main source of information about the patient (refer)", False
    return record, f"the surviving record: {others} replaced or inactive", "replaced" in by


# --- what linked Patients say of the person -------------------------------------------------------------------

def _names(patient: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    family, given = set(), set()
    for n in patient.get("name") or []:
        if isinstance(n, dict):
            if isinstance(n.get("family"), str) and n["family"].strip():
                family.add(n["family"].strip().casefold())
            given |= {g.strip().casefold() for g in n.get("given") or [] if isinstance(g, str) and g.strip()}
    return family, given


def differences(patient: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """What two Patients of one person say differently, in words: their names (none in common, family or given),
    their genders (male, female, other: unknown never differs) and their birth dates (neither within the other: a
    year holds its days). Names are said to differ, not repeated."""
    out = []
    (fa, ga), (fb, gb) = _names(patient), _names(other)
    if fa and fb and not fa & fb and not (ga and gb and ga & gb):
        out.append("name")
    sexes = [p.get("gender") for p in (patient, other)]
    if all(s in ("male", "female", "other") for s in sexes) and sexes[0] != sexes[1]:
        out.append(f"gender ({sexes[1]}, not {sexes[0]})")
    born = [parse_when(p.get("birthDate")) for p in (patient, other)]
    if born[0] and born[1] and not (born[0].lo <= born[1].lo and born[1].hi <= born[0].hi) and \
            not (born[1].lo <= born[0].lo and born[0].hi <= born[1].hi):
        out.append(f"birth date ({other.get('birthDate')}, not {patient.get('birthDate')})")
    return out
