import shutil

import pytest
import yaml

from palsy.model import evidence as E
from palsy.model.criticism import references as RF
from tests.conftest import FIXTURE_EVIDENCE, REPO


def test_real_priors_load_and_cite(evidence):
    assert len(evidence.cases) >= 30 and len(evidence.entries) >= 20
    for e in evidence.entries:
        assert e.kind == "expert_judgment" or e.refs, e.id
        if e.kind == "expert_judgment":
            assert e.raw.get("reasoning"), e.id
    for c in evidence.cases:
        assert c.proven_by and c.ref in evidence.references


def test_every_cause_has_evidence_on_every_node(evidence):
    """Every free node parameter of the real priors is informed by counts or an expert judgment
    (docs/design.md §3): every (cause or form, tree node), every infiltration form's CSF detectability and
    every node the CSF model shares across causes."""
    from palsy.model import design as D

    for name in ("subtype", "independent"):
        variant = evidence.variant(name)
        st = evidence.structure
        informed = {target for e in evidence.entries for target in D.judgment_targets(e, st, variant)
                    if not (e.kind == "expert_judgment" and e.form is not None and not variant.is_mixture)}
        informed |= {(k, j) for k in variant.infiltration_components for (k2, j) in list(informed) if k2 is None}
        free = st.free_parameters(variant.components, variant.infiltration_components)
        # under the independent variant a node that only form-specific entries inform is informed by them all
        if not variant.is_mixture:
            forms = {(e.item, e.level, e.of, e.lp_node) for e in evidence.entries if e.form is not None}
            informed |= {(k, j) for k in variant.infiltration_components for j, n in enumerate(st.nodes)
                         if any((n.key is not None and f[3] == n.key) or (n.item == f[0] and set(n.success) == set(f[1])
                                                                          and set(n.of) == set(f[2])) for f in forms)}
        missing = [st.free_names(variant.components, variant.infiltration_components)[i]
                   for i, f in enumerate(free) if f not in informed]
        assert not missing, (name, missing)


#: Words that mark a citation field as not read on a source page (docs/design.md §3: no placeholders).
# the one definition of an incomplete citation: the check report's
incomplete_fields = RF.incomplete_fields


def test_references_are_complete_where_used(evidence):
    """Every reference an entry, a case or the rate model uses names authors, title, journal and year, and has a
    DOI or PMID unless it says in ``no_id`` why it has none."""
    used = ({r for e in evidence.entries for r in e.refs} | {c.ref for c in evidence.cases}
            | _rate_refs(evidence.rates.doc))
    bad = []
    for key in sorted(used):
        ref = evidence.references[key]
        assert not (ref.get("no_id") and (ref.get("doi") or ref.get("pmid"))), f"{key}: no_id given with an identifier"
        bad += [(key, field, str(ref.get(field) if field != "doi/pmid" else "")) for field in incomplete_fields(ref)]
    print(f"{len(bad)} incomplete fields among {len(used)} references used: {bad}")
    assert len(bad) <= KNOWN_INCOMPLETE, bad


def test_incomplete_fields_are_caught():
    ok = {"authors": "Smith AB, Jones CD", "title": "T", "journal": "J", "year": 2001, "doi": None, "pmid": "123"}
    assert incomplete_fields(ok) == []
    assert incomplete_fields({**ok, "authors": "Smith AB, et al. (attrib.)"}) == ["authors"]
    assert incomplete_fields({**ok, "year": "n.d. (not shown in the source read)"}) == ["year"]
    assert incomplete_fields({**ok, "pmid": None}) == ["doi/pmid"]
    assert incomplete_fields({**ok, "pmid": None, "no_id": "conference abstract: none assigned"}) == []


#: Fields still incomplete among the references used (authors, title, journal or year not seen on a page, or no
#: DOI/PMID found; a count of fields, not of references): by docs/design.md §3 such a source is kept only where
#: it is the best evidence and is flagged "citation incomplete" wherever it is cited (see the entry's
#: ``verified``). The test fails if the number grows. Version 3 added one (diagncytopathol2002: authors and an
#: identifier not found; the only series read that gives the specificity of CSF flow cytometry in followed-up
#: controls).
KNOWN_INCOMPLETE = 68


def test_source_cases_are_library_cases(evidence):
    assert evidence.case("source-001").id.startswith("meqorali2025")
    assert evidence.case("source-002").id.startswith("esteller2022")


def _broken(tmp_path, file, mutate):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    doc = yaml.safe_load((d / file).read_text())
    mutate(doc)
    (d / file).write_text(yaml.safe_dump(doc))
    return d


@pytest.mark.parametrize("file, mutate, expect", [
    ("cohorts.yaml", lambda d: d["entries"][0].update(x=2000), ["cohorts.yaml", "b_bilateral", "'x'", "2000"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(n=0), ["cohorts.yaml", "b_bilateral", "'n'"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(weight=1.5), ["b_bilateral", "'weight'", "1.5", "[0.01, 1]"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(ref="nobody1999"), ["'ref'", "nobody1999"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(level="trilateral"), ["'level'", "trilateral", "allowed"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(finding="age"), ["'finding'", "age", "allowed"]),
    ("cohorts.yaml", lambda d: d["entries"].append(dict(d["entries"][0], id="dup")), ["duplicate source"]),
    ("cohorts.yaml", lambda d: d["entries"].append(dict(d["entries"][2], id="ej2", kind="counts", ref="fixture2020",
                                                         x=1, n=10, weight=1, weight_reason="t")), ["expert judgment and counts"]),
    ("cohorts.yaml", lambda d: d["entries"][16].update(level="mass", of=None), ["not a node"]),
    ("cohorts.yaml", lambda d: d["entries"][10].update(lp_node="detects:pcr"), ["lp_node", "detects:pcr", "allowed"]),
    ("cohorts.yaml", lambda d: d["entries"][10].update(cause="bell"), ["cause", "shared by every cause"]),
    ("cohorts.yaml", lambda d: d["entries"][5].update(level="cytology_negative"), ["method", "cytology_negative"]),
    ("cohorts.yaml", lambda d: d["entries"][5].update(method=None, level="cytology_negative"),
     ["level/of", "cytology_negative", "any_positive"]),
    ("cases.yaml", lambda d: d["cases"].append(dict(d["cases"][0])), ["cases.yaml", "duplicate case id"]),
    # an id must be text that is not blank (an empty id was once taken and renamed '#7': found by the fuzz test)
    ("cases.yaml", lambda d: d["cases"][0].update(id=""), ["cases.yaml", "entry '#1'", "field 'id'", "''", "not blank"]),
    ("cohorts.yaml", lambda d: d["entries"][6].update(id="  "), ["cohorts.yaml", "entry '#7'", "field 'id'", "'  '",
                                                                 "not blank"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(id=7), ["cohorts.yaml", "field 'id'", "7", "text"]),
    ("cases.yaml", lambda d: d["cases"][0]["findings"].update(mri="big"), ["case_a", "findings.mri", "big"]),
    ("cases.yaml", lambda d: d["cases"][0].update(proven_by=[]), ["case_a", "proven_by"]),
    ("model.yaml", lambda d: d.update(w_case=0), ["model.yaml", "w_case"]),
    ("rates.yaml", lambda d: d["rates"]["bell"]["factors"]["incidence"]["lognormal"].update(median=-1),
     ["rates.yaml", "rates.bell.factors.incidence", "lognormal"]),
    ("rates.yaml", lambda d: d["rates"].pop("zoster"), ["rates.yaml", "zoster"]),
    ("rates.yaml", lambda d: d["rates"]["vincristine"]["multipliers"]["recent_vincristine"].update(no={"value": 0}),
     ["leak", "value"]),
    ("rates.yaml", lambda d: d["rates"]["bell"]["multipliers"].update(age={"adult": {"value": 2, "reasoning": "t"}}),
     ["age", "context finding"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(cause="flu"), ["'cause'", "flu", "zoster"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(finding="lineage", level="T-ALL"), ["lineage", "rates.yaml"]),
    ("cohorts.yaml", lambda d: d["entries"][-2].update(given=None), ["'given'", "csf_profile"]),
    ("model.yaml", lambda d: d.update(causes=["bell", "zoster"]), ["model.yaml", "causes", "infiltration"]),
])
def test_broken_evidence_names_file_entry_field(tmp_path, file, mutate, expect):
    d = _broken(tmp_path, file, mutate)
    with pytest.raises(E.EvidenceError) as exc:
        E.load(d)
    msg = str(exc.value)
    for word in expect:
        assert word in msg, (word, msg)


def test_all_problems_in_one_error(tmp_path):
    def two(d):
        d["entries"][0].update(x=-1)
        d["entries"][1].update(weight=2)
    with pytest.raises(E.EvidenceError) as exc:
        E.load(_broken(tmp_path, "cohorts.yaml", two))
    assert len(exc.value.problems) == 2


def test_invalid_yaml_is_reported(tmp_path):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    (d / "cases.yaml").write_text("cases: [\n  - id: x\n")
    with pytest.raises(E.EvidenceError, match="cases.yaml: not valid YAML"):
        E.load(d)


def test_hash_changes_with_content(tmp_path):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    h = E.evidence_hash(d)
    (d / "model.yaml").write_text((d / "model.yaml").read_text().replace("w_case: 0.5", "w_case: 0.25"))
    assert E.evidence_hash(d) != h
    assert E.evidence_hash(REPO / "priors") == E.load(REPO / "priors").hash


def _rate_refs(doc) -> set[str]:
    """Every reference key the rate file cites, anywhere."""
    out: set[str] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "ref" and v:
                out |= {v} if isinstance(v, str) else set(v)
            else:
                out |= _rate_refs(v)
    elif isinstance(doc, list):
        for v in doc:
            out |= _rate_refs(v)
    return out


def test_one_source_one_use(evidence):
    """docs/design.md §3: a source's counts inform a quantity once; the 1979 series only the findings of infiltration."""
    seen = {}
    for e in evidence.entries:
        if e.kind != "counts":
            continue
        for r in e.refs:
            key = (r, e.item, e.cause, e.form, e.level, e.of)
            assert key not in seen, f"{r} counted twice for one quantity: {seen[key]} and {e.id}"
            seen[key] = e.id
    series = "fnp_acuteleukaemia_6all"
    assert series not in _rate_refs(evidence.rates.doc)
    uses = [e for e in evidence.entries if series in e.refs]
    assert uses and all(e.cause == "infiltration" for e in uses)
