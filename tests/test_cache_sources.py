"""The cache key covers every module the fit imports (audit s13, finding 2: ``lp.py`` and
``registry_counts.py`` had been left out of a hand-written list, so an edit to the CSF model kept the old
draws). The key's sources are every ``.py`` of ``model/`` except :data:`palsy.model.cache.NOT_FIT`; this
file proves that no module of ``NOT_FIT`` is imported by the fit, whether at the top of a module or inside
a function, so a module the fit comes to import cannot stay out of the key unnoticed."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from palsy.model import cache as C

MODEL = Path(C.__file__).parent
#: Where the fit starts: ``fit.posterior`` (every fit, cached or not, goes through this module).
ENTRY = "fit.py"
#: Functions of modules on the fit's path that the fit never calls, with why; their imports are not
#: followed. Each must be defined, and named by no module on the fit's path but its own.
NOT_CALLED = {
    ("rests_on.py", "variant_probability"): "the answer's comparison with the other variant (answer, game, "
                                            "psis); the fit calls only rests_on.provenance",
}


def _module_file(module: str) -> str | None:
    """The ``model/``-relative file of a ``palsy.model`` module, or None (not palsy.model, or a name
    imported from a module rather than a module)."""
    if module != "palsy.model" and not module.startswith("palsy.model."):
        return None
    parts = module.split(".")[2:]
    if parts and MODEL.joinpath(*parts).with_suffix(".py").is_file():
        return "/".join(parts) + ".py"
    if MODEL.joinpath(*parts, "__init__.py").is_file():
        return "/".join([*parts, "__init__.py"])
    return None


def _imports(rel: str) -> set[str]:
    """The ``model/`` files that ``rel`` imports anywhere (inside functions too, relative imports resolved),
    except inside :data:`NOT_CALLED` functions."""
    tree = ast.parse((MODEL / rel).read_text(encoding="utf-8"))
    package = ["palsy", "model", *rel.split("/")[:-1]]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for n in ast.iter_child_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and (rel, n.name) in NOT_CALLED:
                continue
            if isinstance(n, ast.Import):
                names.update(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom):
                base = package[: len(package) - n.level + 1] if n.level else []
                module = ".".join([*base, *([n.module] if n.module else [])])
                names.add(module)
                names.update(f"{module}.{a.name}" for a in n.names)  # a submodule imported by name
            visit(n)

    visit(tree)
    return {f for name in names if (f := _module_file(name)) is not None}


def fit_closure() -> set[str]:
    """Every ``model/`` file the fit imports, directly or through another."""
    seen: set[str] = set()
    todo = [ENTRY]
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            todo += sorted(_imports(rel) - seen)
    return seen


def test_the_import_walk_resolves_relative_imports_and_imports_inside_functions():
    assert "registry_counts.py" in _imports("registry_fit.py")  # imported inside from_files
    assert "file_models/base.py" in _imports("file_models/evidence_files.py")  # absolute, in parentheses
    assert {"answer.py", "game.py", "psis.py"}.isdisjoint(_imports("rests_on.py"))  # NOT_CALLED
    relative = [p.relative_to(MODEL).as_posix() for p in MODEL.glob("criticism/*.py")
                if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(p.read_text())))]
    assert relative and all(_imports(rel) for rel in relative)


def test_every_module_the_fit_imports_is_in_the_cache_key():
    closure = fit_closure()
    assert {"lp.py", "registry_counts.py", "likelihood.py", "design.py", "registry_model.py"} <= closure
    missing = closure - set(C.MODEL_SOURCES)
    assert not missing, f"imported by the fit but not in the cache key (listed in cache.NOT_FIT?): {sorted(missing)}"


def test_what_the_key_leaves_out_is_never_imported_by_the_fit():
    everything = {p.relative_to(MODEL).as_posix() for p in MODEL.rglob("*.py") if "__pycache__" not in p.parts}
    for name in C.NOT_FIT:  # each exclusion names something that exists
        assert (MODEL / name).is_dir() if name.endswith("/") else name in everything, name
    left_out = everything - set(C.MODEL_SOURCES)
    assert left_out and not left_out & fit_closure()
    assert set(C.MODEL_SOURCES) == everything - left_out and list(C.MODEL_SOURCES) == sorted(C.MODEL_SOURCES)


def test_functions_whose_imports_are_not_followed_are_never_called_on_the_fit_path():
    closure = fit_closure()
    for (rel, func), why in NOT_CALLED.items():
        assert why and rel in closure
        tree = ast.parse((MODEL / rel).read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body), (rel, func)
        callers = [f for f in closure if f != rel and func in (MODEL / f).read_text(encoding="utf-8")]
        assert not callers, f"{func} of {rel} is named by {callers}: follow its imports"


def test_a_change_to_any_source_changes_the_key(tmp_path):
    for name in C.MODEL_SOURCES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODEL / name, tmp_path / name)
    base = C.code_hash()
    assert C.code_hash(tmp_path) == base
    for name in ("lp.py", "registry_counts.py"):
        original = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(original + b"\n# an edit\n")
        assert C.code_hash(tmp_path) != base, name
        (tmp_path / name).write_bytes(original)
    # code moved from one module to the next (same bytes in all) still changes the key
    a, b = "likelihood.py", "lp.py"
    moved, rest = (tmp_path / a).read_bytes(), (tmp_path / b).read_bytes()
    (tmp_path / a).write_bytes(moved[:-10])
    (tmp_path / b).write_bytes(moved[-10:] + rest)
    assert sorted(C.MODEL_SOURCES).index(a) + 1 == sorted(C.MODEL_SOURCES).index(b)
    assert C.code_hash(tmp_path) != base
