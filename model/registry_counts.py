"""Counts a site can share instead of rows (issue 23 item 4, docs/registry.md): export with small cells
suppressed, and the reading of exported counts back into the registry's likelihood.

The registry's log-likelihood of a patient with final cause y, context ctx and other findings x splits
exactly into log P(y | ctx, site) + log P(x | y, ctx) (:mod:`palsy.model.registry_likelihood`). So a site's
sufficient statistics, per *stratum* (the site and a context as recorded), are

- the **cause table**: how many patients of the stratum had each modelled cause;
- the **findings cells**: how many had each final cause (or ``undetermined``) with each pattern of
  other findings.

With nothing suppressed (``threshold`` 1, which only tests use: the command refuses a threshold below
:data:`palsy.model.registry.MIN_THRESHOLD`) the counts give exactly the rows' log density (a test). With a
threshold t (default 5, ``priors/registry.yaml``), no published number describes fewer than t patients, and
no hidden number can be recovered from the published ones:

1. *strata*: patients whose context group has fewer than t patients with a modelled cause have their last
   context finding withheld (recorded as unknown, which the likelihood marginalises), and so on until their
   group reaches t; what is still below t when every context finding is withheld is not shared;
2. *cause table*: when a stratum has a count from 1 to t-1, every count below t of that stratum, zeros
   included, is published as the range 0 to t-1 (so a hidden cell is never known to be at least 1). If the
   published total would still pin a hidden cell to one value (one hidden cell, or hidden cells that must
   all be at their upper bound), the smallest published count is hidden too (as t to the total), and so
   on; a stratum that cannot be protected so is not shared. The fit reads such a stratum as **censored
   counts**: the multinomial probability of its counts summed over every completion of the hidden cells
   within their ranges that adds up to the total;
3. *findings cells*: a cell of fewer than t patients has its findings withheld one at a time, from the last
   in the schema's order (imaging first), and is merged with the cells it then matches; a cell still below
   t with every finding withheld is dropped (its patients are in the cause table). The findings cells of a
   cause whose count is hidden in the stratum are not published (a cell's count is a lower bound of its
   cause's count);
4. *site totals*: the site's rows, ``out_of_scope``, ``other``, ``undetermined`` and ``causes_not_shared``
   add up with the strata's totals to the rows, so they are protected as one more table (the rows are its
   total) by the rule of 2.

Neither kind of withholding is ignorable, and the fit does not model why a number was withheld:

- a context finding is withheld *because* its group is small, while the common groups are published with
  their full context. The fit reads a coarsened patient as P(y | ctx in the coarsened set), a mixture over
  the model's shares that includes the common levels published separately, which are known not to be this
  patient's: the cause shares of the rare contexts are pulled towards those of the common ones;
- a findings cell is withheld or coarsened *because its pattern is rare*, so rare levels lose their
  findings and common levels keep them (missing not at random): each cause's finding frequencies are biased
  towards its common patterns (10 bell patients published with a normal MRI and 2 with facial-nerve
  enhancement withheld read as P(normal | bell) = 10/10, not 10/12). The rare patterns, such as
  infiltration's striking findings, are the ones that matter. The counts file says how many patients'
  findings were withheld; rows have neither bias.

Two exports of one site can be differenced: a patient added between them is the difference, even when each
file alone hides them. A site should share one cumulative export, or exports of disjoint periods.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import findings as F
from palsy.model import registry as RG
from palsy.model import registry_likelihood as RL
from palsy.model import safe_json as SJ
from palsy.model import safe_yaml as Y
from palsy.model.schema import UNKNOWN, Schema

FORMAT = "palsy-registry-counts"
VERSION = 1
#: Completions of one censored stratum at most (a stratum with more would need a smaller threshold).
MAX_COMPLETIONS = 50_000


def _context(patient: F.Patient, schema: Schema) -> tuple:
    return tuple(patient.values.get(n) for n in schema.context)


def _findings(patient: F.Patient, schema: Schema) -> dict[str, Any]:
    """The non-context findings of a patient as a patient file has them (unknown left out)."""
    out = {}
    for name, value in patient.to_dict().items():
        if name in ("id", "description") or name in schema.context or name in schema.scope:
            continue
        if value in (UNKNOWN, []):
            continue
        out[name] = value
    return out


def withhold_order(schema: Schema) -> tuple[str, ...]:
    """The order in which findings are withheld from a small cell: the last in the schema's order first (the
    CSF profile before the LPs it is read with)."""
    return tuple(n for n in reversed(schema.findings) if n not in schema.context and n not in schema.scope)


def _suppressed(n: int, t: int) -> bool:
    return 1 <= n < t


def export(registry: RG.Registry, schema: Schema, threshold: int) -> dict[str, Any]:
    """The counts of ``registry`` with every cell below ``threshold`` suppressed (see the module's docstring),
    as a JSON-ready mapping, one block per site."""
    t = int(threshold)
    ctx_names = schema.context
    sites: dict[str, Any] = {}
    for site in registry.sites:
        rows = [r for r in registry.rows if r.site == site]
        inside = [r for r in rows if r.in_scope]
        fitted = [r for r in inside if r.cause != RG.OTHER]
        remaining = list(fitted)
        strata = []
        for level in range(len(ctx_names) + 1):
            keep = ctx_names[:len(ctx_names) - level]
            groups: dict[tuple, list] = defaultdict(list)
            for r in remaining:
                groups[tuple(r.patient.values.get(n) if n in keep else None for n in ctx_names)].append(r)
            remaining = []
            last = level == len(ctx_names)
            for key, group in groups.items():
                m = sum(r.modelled for r in group)
                if m >= t or (m == 0 and len(group) >= t) or last:
                    strata.append((key, group))
                else:
                    remaining += group
        blocks = []
        withheld = 0
        not_shared = 0
        for key, group in strata:
            context = {n: v for n, v in zip(ctx_names, key, strict=True) if v is not None}
            modelled = [r for r in group if r.modelled]
            block: dict[str, Any] = {"context": context}
            table = _cause_table(Counter(r.cause for r in modelled), registry.causes, t) if len(modelled) >= t else None
            if table is not None:
                block["total"] = len(modelled)
                block["causes"] = table
            else:
                not_shared += len(modelled)  # their cause counts are not shared (their findings may be)
            cells, w = _findings_cells(group, schema, t)
            # a findings cell's count is a lower bound of its cause's count: none for a hidden count
            shown = [c for c in cells if c["cause"] == RG.UNDETERMINED or isinstance((table or {}).get(c["cause"]), int)]
            withheld += w + sum(c["count"] for c in cells if c not in shown)
            block["findings"] = shown
            if "causes" in block or cells:
                blocks.append(block)
        parts = {"out_of_scope": len(rows) - len(inside), "other": sum(r.cause == RG.OTHER for r in inside),
                 "undetermined": sum(r.cause == RG.UNDETERMINED for r in inside), "causes_not_shared": not_shared}
        shared = sum(b.get("total", 0) for b in blocks)
        sites[site] = {"strata": blocks, **_site_totals(len(rows), parts, shared, t),
                       "findings_withheld": _count(withheld, t)}
    return {"format": FORMAT, "version": VERSION, "threshold": t, "causes": list(registry.causes),
            "schema_hash": schema.hash, "sites": sites}


def _count(n: int, t: int) -> int | dict[str, list[int]]:
    return {"censored": [0, t - 1]} if _suppressed(n, t) else n


def feasible(ranges: dict[str, tuple[int, int]], total: int) -> dict[str, tuple[int, int]]:
    """For counts known to lie in ``ranges`` and to add up to ``total``: the values each can still take (every
    whole number between the two bounds can, by moving the others within theirs)."""
    lo_sum, hi_sum = sum(lo for lo, _ in ranges.values()), sum(hi for _, hi in ranges.values())
    return {k: (max(lo, total - (hi_sum - hi)), min(hi, total - (lo_sum - lo))) for k, (lo, hi) in ranges.items()}


def pinned(ranges: dict[str, tuple[int, int]], total: int) -> list[str]:
    """The hidden counts (a range, not one value) that the published ones and the total pin to one value."""
    f = feasible(ranges, total)
    return [k for k, (lo, hi) in ranges.items() if lo != hi and f[k][0] >= f[k][1]]


def protect(counts: dict[str, int], t: int) -> dict[str, tuple[int, int]] | None:
    """The ranges to publish for a table of ``counts`` whose total is published (see the module's docstring,
    rule 2): each count as (n, n) or a range, none below ``t`` exact and none pinned by the total; None when
    no such table exists (then the table is not shared)."""
    if not any(_suppressed(n, t) for n in counts.values()):
        return {k: (n, n) for k, n in counts.items()}
    total = sum(counts.values())
    ranges = {k: ((0, t - 1) if n < t else (n, n)) for k, n in counts.items()}
    while pinned(ranges, total):
        shown = sorted((n, k) for k, n in counts.items() if ranges[k][0] == ranges[k][1])
        if not shown:
            return None
        ranges[shown[0][1]] = (t, total)
    return ranges


def _published(r: tuple[int, int]) -> int | dict[str, list[int]]:
    return r[0] if r[0] == r[1] else {"censored": [r[0], r[1]]}


def _cause_table(counts: Counter, causes: tuple[str, ...], t: int) -> dict[str, Any] | None:
    ranges = protect({c: counts[c] for c in causes}, t)
    return None if ranges is None else {c: _published(ranges[c]) for c in causes}


def _site_totals(rows: int, parts: dict[str, int], shared: int, t: int) -> dict[str, Any]:
    """The site's rows and the counts that add up with its strata's totals (``shared``) to them (rule 4)."""
    ranges = protect(parts, t) if rows >= t else None
    if ranges is not None:
        return {"rows": rows, **{k: _published(r) for k, r in ranges.items()}}
    # a site of fewer than t rows, or whose parts the rows' total would pin: the rows as a range too, so that
    # the parts' sum is not known
    hidden = {k: ((0, t - 1) if n < t else (t, rows)) for k, n in parts.items()}
    low, high = shared + sum(lo for lo, _ in hidden.values()), shared + sum(hi for _, hi in hidden.values())
    return {"rows": {"censored": [max(low, 1), high]}, **{k: _published(r) for k, r in hidden.items()}}


def _findings_cells(group: list, schema: Schema, t: int) -> tuple[list[dict[str, Any]], int]:
    """The findings cells of a stratum's patients (coarsened below ``t``) and how many patients had findings
    withheld."""
    order = withhold_order(schema)
    items = [(RG.UNDETERMINED if r.cause == RG.UNDETERMINED else r.cause, _findings(r.patient, schema)) for r in group]
    items = [(c, f) for c, f in items if f]
    cells = []
    withheld = 0
    for level in range(len(order) + 1):
        drop = set(order[:level])
        groups: dict[str, list] = defaultdict(list)
        for cause, found in items:
            shown = {k: v for k, v in found.items() if k not in drop}
            if not shown:
                withheld += 1  # every finding withheld: nothing to share
                continue
            groups[json.dumps([cause, shown], sort_keys=True)].append((cause, found))
        items = []
        for key, members in groups.items():
            if len(members) >= t:
                cause, shown = json.loads(key)
                cells.append({"cause": cause, "findings": shown, "count": len(members)})
                withheld += len(members) if level else 0
            else:
                items += members
    return cells, withheld


def to_bytes(counts: dict[str, Any]) -> bytes:
    """The counts file's bytes (JSON)."""
    return (json.dumps(counts, indent=1) + "\n").encode("utf-8")


# --- reading ---------------------------------------------------------------------------------------

def read(path: str | Path, schema: Schema, causes: tuple[str, ...], site_sigma: float):
    """A counts file as the fit's input (:class:`palsy.model.registry_fit.RegistryInput`).

    Raises
    ------
    findings.InputError
        Naming the file, the site, the stratum and the field of every problem.
    """
    from palsy.model import registry_fit as RF

    path = Path(path)
    try:
        data = Y.read_bytes(path)
        doc = SJ.loads(Y.decode(data, path))  # strictly: a count given twice is refused, not read last-one-wins
    except Y.YAMLInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    except SJ.JSONInputError as exc:
        raise F.InputError([exc.detail], str(path)) from None
    problems: list[str] = []
    cells, censored, totals = parse(doc, schema, causes, problems)
    if problems:
        raise F.InputError(problems, str(path))
    digest = hashlib.sha256(f"{hashlib.sha256(data).hexdigest()}|{site_sigma!r}".encode()).hexdigest()
    return RF.RegistryInput(tuple(RL.aggregate(cells)), tuple(censored), tuple(doc["sites"]), site_sigma, digest,
                            (str(path),), totals["counts"], totals["other"], counts_from_rows=False)


def _int_or_range(value: Any, where: str, problems: list[str]) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, value
    rng = value.get("censored") if isinstance(value, dict) and set(value) == {"censored"} else None
    if (isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in rng)
            and 0 <= rng[0] <= rng[1]):
        return rng[0], rng[1]
    problems.append(f"{where}: {Y.brief(value)} is not a count; give a whole number >= 0 or {{censored: [low, high]}}")
    return None


def _mid(value: Any) -> int:
    """A count for the report (a censored one as its range's midpoint, rounded)."""
    if isinstance(value, dict):
        lo, hi = value["censored"]
        return int(round((lo + hi) / 2))
    return int(value)


def parse(doc: Any, schema: Schema, causes: tuple[str, ...], problems: list[str]):
    """The cells, censored strata and totals of a counts document (problems appended, each naming its place)."""
    cells: list[RL.Cell] = []
    censored: list[RL.Censored] = []
    totals: dict[str, Any] = {"counts": Counter(), "other": {}}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        problems.append(f"not a counts file of palsy (format {FORMAT!r}, version {VERSION}); write one with "
                        "`palsy registry export-counts`")
        return cells, censored, totals
    if sorted(doc.get("causes") or []) != sorted(causes):
        problems.append(f"causes: {Y.brief(doc.get('causes'))} are not the model's causes ({', '.join(causes)}); "
                        "export the counts again with this version of palsy's evidence")
        return cells, censored, totals
    if doc.get("schema_hash") != schema.hash:
        problems.append(f"schema_hash: {Y.brief(doc.get('schema_hash'))} is not the hash of this evidence's finding "
                        f"schema ({schema.hash}): the counts were exported with another schema (another version of "
                        "palsy's evidence), so their findings may mean something else; export them again with this one")
        return cells, censored, totals
    sites = doc.get("sites")
    if not isinstance(sites, dict) or not sites:
        problems.append("sites: give one block per site")
        return cells, censored, totals
    for site, block in sites.items():
        if not (isinstance(site, str) and RG.SITE_RE.match(site)) or not isinstance(block, dict):
            problems.append(f"sites: {Y.brief(site)} is not a site block")
            continue
        for key in ("rows", "other", "undetermined", "out_of_scope"):
            if key in block and _int_or_range(block[key], f"sites.{site}.{key}", problems) is not None:
                totals["counts"][key] += _mid(block[key])
        for s_i, stratum in enumerate(block.get("strata") or [], start=1):
            where = f"sites.{site}.strata[{s_i}]"
            _stratum(site, stratum, where, schema, causes, cells, censored, totals, problems)
    totals["counts"]["fitted"] = totals["counts"]["modelled"] + totals["counts"]["undetermined"]
    totals["counts"] = dict(totals["counts"])
    return cells, censored, totals


def _stratum(site, stratum, where, schema, causes, cells, censored, totals, problems) -> None:
    if not isinstance(stratum, dict):
        problems.append(f"{where}: not a stratum")
        return
    ctx = stratum.get("context") or {}
    if not isinstance(ctx, dict) or any(k not in schema.context for k in ctx):
        problems.append(f"{where}.context: {Y.brief(ctx)}: give context findings only ({', '.join(schema.context)})")
        return
    try:
        ctx_patient = F.parse_patient(ctx, where, schema=schema)
    except F.InputError as exc:
        problems += [f"{where}.context: {p}" for p in exc.problems]
        return
    bounds: dict[str, int] = {}
    if "causes" in stratum:
        bounds = _cause_cells(site, stratum, where, ctx_patient, causes, cells, censored, totals, problems) or {}
    in_cells: Counter = Counter()
    for c_i, cell in enumerate(stratum.get("findings") or [], start=1):
        cw = f"{where}.findings[{c_i}]"
        if not isinstance(cell, dict):
            problems.append(f"{cw}: not a cell")
            continue
        cause, found, count = cell.get("cause"), cell.get("findings"), cell.get("count")
        if cause not in (*causes, RG.UNDETERMINED):
            problems.append(f"{cw}.cause: {Y.brief(cause)}; allowed: {', '.join((*causes, RG.UNDETERMINED))}")
            continue
        if not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
            problems.append(f"{cw}.count: {Y.brief(count)} is not a whole number >= 1")
            continue
        if not isinstance(found, dict) or any(k in schema.context for k in found):
            problems.append(f"{cw}.findings: give the other findings as a patient file has them (no context)")
            continue
        try:
            patient = F.parse_patient({**ctx, **found}, cw, schema=schema)
        except F.InputError as exc:
            problems += [f"{cw}: {p}" for p in exc.problems]
            continue
        in_cells[cause] += count
        if cause == RG.UNDETERMINED:
            cells.append(RL.Cell(site, patient, tuple(causes), tuple(causes), count))
        else:
            cells.append(RL.Cell(site, patient, (cause,), (cause,), count))
    for cause, n in in_cells.items():
        if cause in bounds and n > bounds[cause]:
            problems.append(f"{where}.findings: the cells of {cause} add up to {n} patients, more than the stratum has "
                            f"with that cause (at most {bounds[cause]}): the file is damaged or was edited; export it again")


def _cause_cells(site, stratum, where, ctx_patient, causes, cells, censored, totals, problems) -> dict[str, int] | None:
    """A stratum's cause table as cells (or a censored stratum), and the most patients each cause can have
    (its count, or its range's upper bound); problems appended."""
    total = _int_or_range(stratum.get("total"), f"{where}.total", problems)
    table = stratum["causes"]
    if not isinstance(table, dict) or set(table) != set(causes):
        problems.append(f"{where}.causes: give a count for each cause: {', '.join(causes)}")
        return
    ranges = {c: _int_or_range(table[c], f"{where}.causes.{c}", problems) for c in causes}
    if total is None or total[0] != total[1] or any(v is None for v in ranges.values()):
        if total is not None and total[0] != total[1]:
            problems.append(f"{where}.total: a stratum's total is published exactly")
        return
    n = total[0]
    totals["counts"]["modelled"] += n
    bounds = {c: min(hi, n) for c, (_, hi) in ranges.items()}
    if all(lo == hi for lo, hi in ranges.values()):
        if sum(lo for lo, _ in ranges.values()) != n:
            problems.append(f"{where}: the causes' counts add up to {sum(lo for lo, _ in ranges.values())}, "
                            f"not the total {n}")
            return bounds
        for c, (k, _) in ranges.items():
            if k:
                cells.append(RL.Cell(site, ctx_patient, (c,), tuple(causes), k))
    else:
        comp = completions([ranges[c] for c in causes], n)
        if comp is None:
            problems.append(f"{where}: more than {MAX_COMPLETIONS:,} ways to complete the suppressed counts; "
                            "export with a smaller threshold")
            return bounds
        if not len(comp):
            problems.append(f"{where}: no completion of the suppressed counts adds up to the total {n}")
            return bounds
        log_coef = np.array([math.lgamma(n + 1) - sum(math.lgamma(k + 1) for k in m) for m in comp])
        censored.append(RL.Censored(site, ctx_patient, np.asarray(comp, float), log_coef))
    return bounds


def completions(ranges: list[tuple[int, int]], total: int) -> list[tuple[int, ...]] | None:
    """Every vector of counts within ``ranges`` that adds up to ``total`` (None if there are too many)."""
    fixed = sum(lo for lo, hi in ranges if lo == hi)
    free = [i for i, (lo, hi) in enumerate(ranges) if lo != hi]
    if not free:
        return [tuple(lo for lo, _ in ranges)] if fixed == total else []
    # the widest free count is what the others leave of the total: enumerate only the others
    last = max(free, key=lambda i: ranges[i][1] - ranges[i][0])
    rest = [i for i in free if i != last]
    size = math.prod(ranges[i][1] - ranges[i][0] + 1 for i in rest)
    if size > MAX_COMPLETIONS * 20:
        return None
    out = []
    for values in itertools.product(*(range(ranges[i][0], ranges[i][1] + 1) for i in rest)):
        v_last = total - fixed - sum(values)
        if not ranges[last][0] <= v_last <= ranges[last][1]:
            continue
        m = [lo for lo, _ in ranges]
        for i, v in zip(rest, values, strict=True):
            m[i] = v
        m[last] = v_last
        out.append(tuple(m))
        if len(out) > MAX_COMPLETIONS:
            return None
    return sorted(out)
