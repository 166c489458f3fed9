"""The answer uses the hospital's registry whenever ``priors/registry.yaml`` names one (issue 23 item 2): the
warm path finds the registry's fit by the files' bytes alone, the key the fit caches it under."""

from __future__ import annotations

import shutil

from tests.conftest import REPO


def test_a_query_finds_the_registrys_fit(tmp_path, monkeypatch):
    from palsy.model import api, evidence, registry
    from palsy.model import cache as C
    from palsy.model import draws as draws_io
    from palsy.model import registry_fit as RF

    pdir = tmp_path / "priors"
    shutil.copytree(REPO / "priors", pdir)
    assert registry.key(pdir) is None  # the shipped evidence names no registry: the plain fit's key
    rows = REPO / "tests" / "fixtures" / "registry" / "small.csv"
    text = (pdir / "registry.yaml").read_text(encoding="utf-8").replace("rows: []", f"rows: ['{rows}']", 1)
    (pdir / "registry.yaml").write_text(text, encoding="utf-8")
    key = registry.key(pdir)
    assert key is not None and key == RF.from_settings(evidence.load(pdir)).hash  # the fit's key, from bytes alone
    # a query reads the entry under that key (never the plain fit's, which ignores the registry)
    monkeypatch.setenv("PALSY_CACHE", str(tmp_path / "cache"))
    entry = C.folder(evidence.evidence_hash(pdir), "independent", C.Settings(), key) / "draws.npz"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"stand-in")
    plain = C.folder(evidence.evidence_hash(pdir), "independent", C.Settings()) / "draws.npz"
    assert plain != entry
    read = []
    monkeypatch.setattr(draws_io, "load", lambda path: read.append(path) or "draws with the registry")
    assert api.posterior_draws("independent", pdir) == "draws with the registry" and read == [entry]
    # and a changed registry file is another fit
    edited = tmp_path / "rows.csv"
    edited.write_bytes(rows.read_bytes() + b"\n")
    (pdir / "registry.yaml").write_text(text.replace(str(rows), str(edited)), encoding="utf-8")
    assert registry.key(pdir) not in (None, key)
