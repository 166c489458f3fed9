"""One source, one use; every number traced (issue 19 items 3 and 5): mechanical checks over priors/.

*Provenance.* An expert judgment that was elicited from published cases or papers says so in a
``provenance`` field (cohorts.yaml entries; model.yaml's ``synthesis.selection.gamma_prior``):

    provenance:
      cases: [ids of library cases, or of other published cases, the judgment was read from]
      refs: [reference keys it was read from]

Until every judgment carries one, a judgment's ``ref`` keys stand for its provenance (what it cites is
what it was read from). The rules:

1. the validation split never informs the fit: no validation case is a library case, and no
   reference of a validation case is used by a count, a case, a rate block or a provenance;
2. no source patient informs its own prior: no judgment was read from a source patient's library case
   (its id, or its paper's reference);
3. a judgment read from cases that are in the likelihood gives way to them or loses them: its
   provenance holds no library case (nor a library case's paper);
4. no reference informs one quantity twice: two count entries of one quantity do not share a
   reference, a quantity's judgment is not read from a reference its counts use, and the selection
   prior is not read from a series that counts a selected feature.

The violations that priors/ holds today are listed below (each with the rule it breaks): the lists may
only shrink (a test fails when a listed violation is gone, so that the list is kept true, and when a new
one appears).

*Numbers traced.* Every number in a file of priors/ (but the bibliographic ones of references.yaml) is
traced: inside a block with a ``ref`` to references.yaml; or a labelled judgment (``kind:
expert_judgment`` with ``reasoning``); or a number the file itself labels (a ``source`` or ``reasoning``
beside it, model.yaml's ``reasoning`` entry for its setting, or a comment on its line or above its key
that says it is a convention, structural, a judgment or names its source).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import PATIENTS, REPO

PRIORS = REPO / "priors"

#: Judgments read from library cases today (rule 3), found from their ``ref`` keys: the lead re-elicits them
#: without those cases (or drops them for the base prior, giving way to the cases); the list may only shrink.
KNOWN_FROM_LIBRARY_CASES = {
    "ej_onset_myeloid_sarcoma", "ej_eighth_myeloid_sarcoma", "ej_other_cn_perineural", "ej_other_cn_myeloid_sarcoma",
    "ej_otoscopy_myeloid_sarcoma", "ej_mri_beyond_perineural", "ej_mri_beyond_myeloid_sarcoma",
    "ej_mri_otomastoid_myeloid_sarcoma", "ej_mri_vii_enhancement_perineural", "ej_mri_vii_viii_myeloid_sarcoma",
}
#: Judgments read from a source patient's own case (rule 2): source 001 (meqorali2025) informs its own
#: leave-one-out prior through these.
KNOWN_FROM_SOURCE_PATIENTS = {"ej_other_cn_perineural", "ej_mri_beyond_perineural", "ej_mri_vii_enhancement_perineural"}
#: References that inform one quantity twice (rule 4), as "quantity: reference".
KNOWN_TWICE = {"selection prior and laterality: bilateral count: fnp_acuteleukaemia_6all"}
#: Numbers no rule traces yet, as "file: path" (the lead labels them; the list may only shrink).
KNOWN_UNTRACED = {"schema.yaml: findings/csf/max_lps", "teaching_cases.yaml: typical/repeats"}


def _load(name: str):
    return yaml.safe_load((PRIORS / name).read_text(encoding="utf-8"))


def _keys(value) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]


def _provenance(block: dict) -> tuple[set[str], set[str]]:
    """(cases, refs) a judgment was read from: its provenance field, else its ref keys and the reference
    keys its reasoning names."""
    prov = block.get("provenance") if isinstance(block, dict) else None
    if isinstance(prov, dict):
        return set(_keys(prov.get("cases"))), set(_keys(prov.get("refs")))
    refs = set(_keys(block.get("ref") if isinstance(block, dict) else None))
    text = str(block.get("reasoning") or "") if isinstance(block, dict) else ""
    return set(), refs | {k for k in _KNOWN_KEYS if re.search(rf"\b{re.escape(k)}\b", text)}


_KNOWN_KEYS: set[str] = set((yaml.safe_load((PRIORS / "references.yaml").read_text(encoding="utf-8")) or {}).keys())


def _judgments(evidence) -> list:
    return [e for e in evidence.entries if e.kind == "expert_judgment"]


def _source_cases(evidence) -> dict[str, object]:
    """Source patient id -> its library case (those that are one)."""
    out = {}
    for path in sorted(Path(PATIENTS).glob("*.yaml")):
        pid = yaml.safe_load(path.read_text(encoding="utf-8")).get("id")
        case = evidence.case(pid) if pid else None
        if case is not None:
            out[pid] = case
    return out


def _rate_refs(node) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            out |= set(_keys(v)) if k in ("ref", "refs") else _rate_refs(v)
    elif isinstance(node, list):
        for v in node:
            out |= _rate_refs(v)
    return out


def test_the_validation_split_never_informs_the_fit(evidence):
    val = _load("validation.yaml") or {}
    cases = val.get("cases") or []
    assert cases, "validation.yaml has no scored case"
    ids, refs = {c["id"] for c in cases}, {c["ref"] for c in cases}
    library = {c.id for c in evidence.cases} | {a for c in evidence.cases for a in c.also_known_as}
    assert not ids & library, ids & library
    used = ({r for e in evidence.entries for r in e.refs} | {c.ref for c in evidence.cases}
            | _rate_refs(evidence.rates.doc))
    for e in _judgments(evidence):
        pc, pr = _provenance(e.raw)
        used |= pr
        assert not pc & ids, (e.id, pc & ids)
    assert not refs & used, f"validation references used by the fit: {sorted(refs & used)}"


def test_no_source_patient_informs_its_own_prior(evidence):
    src = _source_cases(evidence)
    assert {"source-001", "source-002"} <= set(src)  # the source patients that are library cases
    bad = set()
    for e in _judgments(evidence):
        pc, pr = _provenance(e.raw)
        for case in src.values():
            if case.id in pc or set(case.also_known_as) & pc or case.ref in pr:
                bad.add(e.id)
    assert bad <= KNOWN_FROM_SOURCE_PATIENTS, f"new judgments read from a source patient: {sorted(bad - KNOWN_FROM_SOURCE_PATIENTS)}"
    assert KNOWN_FROM_SOURCE_PATIENTS <= bad, f"fixed (remove from the list): {sorted(KNOWN_FROM_SOURCE_PATIENTS - bad)}"


def test_judgments_read_from_library_cases_lose_them(evidence):
    library = {c.id for c in evidence.cases} | {a for c in evidence.cases for a in c.also_known_as}
    library_refs = {c.ref for c in evidence.cases}
    bad = set()
    for e in _judgments(evidence):
        pc, pr = _provenance(e.raw)
        if pc & library or pr & library_refs:
            bad.add(e.id)
    assert bad <= KNOWN_FROM_LIBRARY_CASES, f"new judgments read from library cases: {sorted(bad - KNOWN_FROM_LIBRARY_CASES)}"
    assert KNOWN_FROM_LIBRARY_CASES <= bad, f"fixed (remove from the list): {sorted(KNOWN_FROM_LIBRARY_CASES - bad)}"


def _quantity(e) -> tuple:
    return (e.quantity, e.item, e.level, e.of, e.cause, e.form, e.method, e.lp_node, e.contaminated)


def _name(e) -> str:
    who = e.lp_node or "/".join(e.level)
    return f"{e.item}: {who}" + (f" | {e.cause}" if e.cause else "") + (f"/{e.form}" if e.form else "")


def test_no_reference_informs_one_quantity_twice(evidence):
    quantities: dict[tuple, list] = {}
    for e in evidence.entries:
        quantities.setdefault(_quantity(e), []).append(e)
    bad = set()
    for es in quantities.values():
        counts = [e for e in es if e.kind == "counts"]
        seen: dict[str, str] = {}
        for e in counts:
            for r in e.refs:
                if r in seen:
                    bad.add(f"{_name(e)} counted twice: {r} ({seen[r]}, {e.id})")
                seen[r] = e.id
        for j in (e for e in es if e.kind == "expert_judgment"):
            _, pr = _provenance(j.raw)
            for r in pr & set(seen):
                bad.add(f"{_name(j)} judgment and count: {r}")
    # the selection prior against the counts of the features it inflates
    sel = (_load("model.yaml") or {}).get("synthesis", {}).get("selection", {})
    gp = sel.get("gamma_prior") or {}
    _, pr = _provenance(gp)
    if not pr:  # no provenance yet: the references its reasoning names
        text = str(((_load("model.yaml") or {}).get("reasoning") or {}).get("synthesis") or "")
        pr = {k for k in evidence.references if re.search(rf"\b{re.escape(k)}\b", text)}
    features = {(n["finding"], tuple(n["level"]) if isinstance(n["level"], list) else (n["level"],))
                for n in sel.get("nodes") or []}
    for e in evidence.entries:
        if e.kind == "counts" and (e.item, e.level) in features:
            for r in set(e.refs) & pr:
                bad.add(f"selection prior and {e.item}: {'/'.join(e.level)} count: {r}")
    assert bad <= KNOWN_TWICE, f"new double uses: {sorted(bad - KNOWN_TWICE)}"
    assert KNOWN_TWICE <= bad, f"fixed (remove from the list): {sorted(KNOWN_TWICE - bad)}"


# --- every number traced -----------------------------------------------------------------------------

LABEL_WORDS = ("convention", "structural", "judgment", "judgement", "design", "definition", "synthetic")


def _numbers(path: Path):
    """(path, line, value) of every number of a YAML file, with the mappings around it (innermost last)."""
    root = yaml.compose(path.read_text(encoding="utf-8"))
    out = []

    def value(node):
        return yaml.safe_load(yaml.serialize(node))

    def walk(node, where: list[str], blocks: list, keys: list[int]):
        if isinstance(node, yaml.MappingNode):
            here = blocks + [node]
            for k, v in node.value:
                walk(v, where + [str(k.value)], here, keys + [k.start_mark.line])
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                label = None
                if isinstance(v, yaml.MappingNode):
                    label = next((str(vv.value) for kk, vv in v.value if kk.value in ("id", "name")
                                  and isinstance(vv, yaml.ScalarNode)), None)
                walk(v, where + [label or str(i)], blocks, keys + [v.start_mark.line])
        elif isinstance(node, yaml.ScalarNode) and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            out.append(("/".join(where), [*keys, node.start_mark.line], value(node),
                        [dict((k.value, vv) for k, vv in b.value) for b in blocks]))
    walk(root, [], [], [])
    return out


def _traced(file: str, where: str, key_lines: list[int], blocks: list[dict], lines: list[str], refs: set[str],
            doc) -> bool:
    def scalar(node):
        return yaml.safe_load(yaml.serialize(node)) if node is not None else None

    for b in reversed(blocks):
        keys = set()
        for k in ("ref", "refs"):
            keys |= set(_keys(scalar(b.get(k))))
        if keys and keys <= refs:
            return True
        if scalar(b.get("kind")) == "expert_judgment" and scalar(b.get("reasoning")):
            return True
        if scalar(b.get("kind")) in ("convention", "structural") and (scalar(b.get("reasoning")) or scalar(b.get("source"))):
            return True
        if scalar(b.get("source")) or (scalar(b.get("reasoning")) and not keys and file != "cohorts.yaml"):
            return True
    if file == "model.yaml":  # the file's reasoning mapping labels each setting
        top = where.split("/", 1)[0]
        reasoning = (doc or {}).get("reasoning") or {}
        if top in reasoning or (top == "gamma_prior" and "synthesis" in reasoning):
            return True
    # a comment on the number's line, or the comment block above its key or any of its parents' keys
    here = lines[key_lines[-1]]
    if "#" in here and any(w in here.split("#", 1)[1].lower() for w in LABEL_WORDS):
        return True
    for line in key_lines:
        j = line - 1
        while j >= 0 and (lines[j].strip().startswith("#") or not lines[j].strip()):
            if any(w in lines[j].lower() for w in LABEL_WORDS) or any(re.search(rf"\b{re.escape(r)}\b", lines[j])
                                                                       for r in refs):
                return True
            j -= 1
    return False


def _untraced(folder: Path = PRIORS, only: str | None = None) -> set[str]:
    refs = set(_KNOWN_KEYS)
    out = set()
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "references.yaml" or (only and path.name != only):  # references: bibliographic numbers
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for where, key_lines, _, blocks in _numbers(path):
            if not _traced(path.name, where, key_lines, blocks, lines, refs, doc):
                out.add(f"{path.name}: {where}")
    return out


def test_every_number_in_priors_is_traced():
    """Every number of priors/*.yaml (cohorts, cases, rates, actions, decision, validation, model, schema,
    teaching cases, the FHIR map) is traced to a reference key or a labelled judgment or convention."""
    bad = _untraced()
    assert bad <= KNOWN_UNTRACED, f"numbers with no reference and no label: {sorted(bad - KNOWN_UNTRACED)}"
    assert KNOWN_UNTRACED <= bad, f"now traced (remove from the list): {sorted(KNOWN_UNTRACED - bad)}"


def test_the_tracing_rule_catches_a_bare_number(tmp_path):
    """A number with no reference, judgment or label is caught; the same number labelled is not."""
    p = tmp_path / "decision.yaml"
    p.write_text((PRIORS / "decision.yaml").read_text(encoding="utf-8") + "\nbare_number_for_the_test: 0.37\n",
                 encoding="utf-8")
    assert _untraced(tmp_path) == {"decision.yaml: bare_number_for_the_test"}
    p.write_text(p.read_text(encoding="utf-8").replace(
        "bare_number_for_the_test: 0.37", "bare_number_for_the_test: 0.37  # a convention of the test"), encoding="utf-8")
    assert not _untraced(tmp_path)


def test_incomplete_citations_are_flagged_wherever_cited(evidence):
    """The check report's reference table flags every incomplete citation used anywhere in priors/."""
    from palsy.model.criticism import references as R

    t = R.table(evidence.references, PRIORS)
    assert not t["missing"], t["missing"]
    files = {w.split(":")[0] for r in t["rows"] for w in r["where"]}
    assert {"cohorts.yaml", "cases.yaml", "rates.yaml", "actions.yaml", "validation.yaml"} <= files
    for r in t["rows"]:
        assert (r["flag"] is not None) == bool(R.incomplete_fields(evidence.references[r["key"]]))
        if r["flag"]:
            assert r["flag"].startswith("citation incomplete: ")
    print(f"\n{t['incomplete_references']} of {len(t['rows'])} cited references incomplete "
          f"({t['incomplete_fields']} fields)")


@pytest.mark.parametrize("name", ["pyproject.toml", "environment.yml"])
def test_the_heavy_checks_dependency_is_declared(name):
    """dask and distributed (the heavy checks on a cluster) in both dependency files (test_setup keeps the
    two files equal)."""
    text = (REPO / name).read_text(encoding="utf-8")
    assert re.search(r"\bdask>=", text) and re.search(r"\bdistributed>=", text)
