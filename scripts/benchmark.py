"""Speed bars of docs/design.md §8, each printed beside its baseline from the same run (ratios hold on a
noisy machine). Run: ``make benchmark`` (or ``python scripts/benchmark.py --quick``)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wall(cmd: list[str], runs: int) -> float:
    """Median wall time of a process over ``runs`` runs."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def row(name: str, seconds: float, bar: float | None, baseline: str, base_seconds: float) -> None:
    ok = "" if bar is None else ("  PASS" if seconds < bar else "  FAIL")
    bar_s = "" if bar is None else f" (bar {bar:g} s)"
    print(f"{name:<58} {seconds:8.3f} s{bar_s}{ok}   vs {baseline}: {base_seconds:.3f} s  (ratio {seconds / base_seconds:.2f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="skip the fit timings")
    ap.add_argument("--routes", nargs="?", const="", default=None, metavar="NAME",
                    help="also time the sampler routes (those whose name contains NAME, all without it) from "
                         "empty compile caches (docs/design.md §8; several minutes per route)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each row as it is measured, also into a file
    os.environ.setdefault("PALSY_CACHE", str(REPO / ".cache" / "palsy"))

    from palsy.model import answer as A
    from palsy.model import cache as C
    from palsy.model import evidence as E
    from palsy.model import exact, fit, nuts
    from palsy.model import findings as F

    ev = E.load(REPO / "priors")
    print(f"evidence {ev.hash[:12]}; cache {C.root()}; {os.cpu_count()} cores\n")
    t = time.perf_counter()
    post = {v: fit.posterior(v, ev) for v in ("independent", "subtype")}  # warm the cache
    print(f"(cache warm-up: {time.perf_counter() - t:.1f} s)\n")

    # 1. a warm-cache palsy posterior process against a bare numpy import
    py = sys.executable
    bare = wall([py, "-c", "import numpy"], args.runs)
    patient = str(REPO / "patients" / "source-001.yaml")
    for v in ("independent", "subtype"):
        cli = wall([py, "-m", "palsy.scripts.palsy", "posterior", "--patient", patient, "--variant", v, "--json"], args.runs)
        row(f"palsy posterior, warm cache, {v} (median of {args.runs})", cli, 1.0, "python -c 'import numpy'", bare)

    # 2. the answer itself: a patient with every finding and 6 LPs, Shapley included
    full = F.parse_patient({
        "lineage": "T-ALL", "remission": "remission_on_treatment", "age_group": "child", "recent_vincristine": "yes",
        "recent_hsct": "no", "forehead": "involved", "onset": "acute", "laterality": "bilateral",
        "eighth_nerve": "none", "other_cranial_nerves": "one_or_more", "peripheral_nerves": "none",
        "vesicles": "absent", "otoscopy": "normal", "csf": ["negative:cytology"] * 3 + ["negative:flow"] * 3,
        "csf_profile": "protein_only", "mri": "normal"}, "benchmark")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        import yaml

        yaml.safe_dump(full.to_dict(), f)
    for v in ("independent", "subtype"):
        cli = wall([py, "-m", "palsy.scripts.palsy", "posterior", "--patient", f.name, "--variant", v, "--json"], 3)
        row(f"palsy posterior, every finding and 6 LPs, {v} (median of 3)", cli, 2.0, "python -c 'import numpy'", bare)
    os.unlink(f.name)
    pat = F.parse_patient({"laterality": "bilateral", "csf": ["negative:cytology"]})

    # 3. one clinician report (HTML and PDF) from a warm cache
    from palsy.scripts.palsy import available

    if "report" in available():
        with tempfile.TemporaryDirectory() as out:
            rep = wall([py, "-m", "palsy.scripts.palsy", "report", patient, "--out", out], 3)
            row("palsy report (HTML and PDF), warm cache (median of 3)", rep, 5.0, "python -c 'import numpy'", bare)
            # a ward list: every patient of patients/ in one process, against one process per patient
            files = sorted(str(p) for p in (REPO / "patients").glob("*.yaml"))
            one = wall([py, "-m", "palsy.scripts.palsy", "report", *files, "--out", out], 3)
            row(f"palsy report of {len(files)} patients in one process (median of 3)", one, None,
                f"{len(files)} x one report", len(files) * rep)

    if args.routes is not None and args.routes in "serve":  # --routes serve: the service under load (locust)
        from palsy.scripts.serve import loadtest

        loadtest.report()
    if args.quick:
        return 0
    if args.routes is not None:
        routes(bare, args.routes)
    # 4. fits: cold (compilation included) printed; timed after a warm-up fit in the same process
    print()
    nuts.clear_compiled()
    settings = C.Settings(seed=123)
    t = time.perf_counter()
    exact.posterior(ev)
    t_exact = time.perf_counter() - t
    for v in ("independent", "subtype"):
        t = time.perf_counter()
        fit.sample(v, ev, settings)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        dt, _ = fit.sample(v, ev, C.Settings(seed=124))
        warm = time.perf_counter() - t
        d = fit.diagnostics(dt)
        print(f"fit {v}: cold {cold:.1f} s (compilation included, not barred)")
        row(f"fit {v}, 4 x 1,000 draws, same-process refit", warm, 5.0, "conjugate posterior", t_exact)
        q = post[v].draws
        t = time.perf_counter()
        A.answer(pat, q)
        ans = time.perf_counter() - t
        print(f"{'':<58} a PyMC refit per query would cost {warm + ans:.2f} s vs {ans:.3f} s from the cache "
              f"(ratio {(warm + ans) / ans:.0f})")
        print(f"{'':<58} R-hat max {d['r_hat_max']:.4f} (<= 1.01), bulk ESS min {d['ess_bulk_min']:.0f} (>= 1000), "
              f"divergences {d['divergences']} (0): {'PASS' if d['ok'] else 'FAIL'}")
    return 0


#: Sampler routes measured from empty compile caches: (name, extra environment, sampler or "c").
#: NUMBA_OPT lowers LLVM's optimisation level, which is where nutpie's numba compilation spends its time.
#: "pytensor C" compiles logp and gradient with PyTensor's C backend (cached per op on disk, so an edit
#: recompiles little) and hands nutpie a Python function (nutpie's own helper, a private API: this is a
#: measurement, not a route palsy uses).
ROUTES = (("blackjax + JAX (default)", {}, "blackjax"), ("nutpie + numba", {}, "nutpie"),
          ("nutpie + numba, NUMBA_OPT=0", {"NUMBA_OPT": "0"}, "nutpie"),
          ("nutpie + pytensor C (Python callback)", {}, "c"))

_COLD_FIT = """
import sys, time
import numpy as np
from palsy.model import cache as C, design as D, evidence, fit
ev = evidence.load(sys.argv[1])
t = time.perf_counter(); dt, _ = fit.sample(sys.argv[2], ev, C.Settings(sampler=sys.argv[3])); cold = time.perf_counter() - t
d = fit.diagnostics(dt)
# a refit in the same process with changed data: every case at half its weight
n = len(D.build(ev, ev.variant(sys.argv[2])).case_ids)
t = time.perf_counter()
fit.sample(sys.argv[2], ev, C.Settings(seed=7, sampler=sys.argv[3]), data={"case_w": np.full(n, 0.5)})
same = time.perf_counter() - t
print(f"{cold:.1f} {same:.1f} {d['r_hat_max']:.4f} {d['ess_bulk_min']:.0f} {d['divergences']}", flush=True)
"""

_COLD_FIT_C = """
import sys, time, warnings
import numpy as np
import nutpie
from nutpie import compile_pymc as NC
from nutpie.compiled_pyfunc import from_pyfunc
from pymc.initial_point import make_initial_point_fn
from palsy.model import build as B, design as D, evidence, fit
warnings.simplefilter("ignore")
ev = evidence.load(sys.argv[1])

def compiled():
    model = B.from_design(D.build(ev, ev.variant(sys.argv[2])))
    ipf = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs), return_transformed=True)
    n, _, logp_pt, expand_pt, init, (names, _, shapes), _ = NC._make_functions(
        model, mode="FAST_RUN", compute_grad=True, join_expanded=False, pymc_initial_point_fn=ipf)
    def make_logp():
        def logp(x, **_):
            lp, g = logp_pt(x)
            return float(lp), np.asarray(g, dtype="float64")
        return logp
    def make_expand(seed1, seed2, chain):
        def expand(x, **_):
            return {k: np.asarray(v, dtype="float64").reshape(s) for k, v, s in zip(names, expand_pt(x), shapes)}
        return expand
    return from_pyfunc(n, make_logp, make_expand, [np.dtype("float64")] * len(names), shapes, names,
                       make_initial_point_fn=init)

t = time.perf_counter(); cm = compiled()
dt = nutpie.sample(cm, draws=1000, tune=1000, chains=4, cores=2, seed=1, progress_bar=False)
cold = time.perf_counter() - t
t = time.perf_counter(); dt = nutpie.sample(cm, draws=1000, tune=1000, chains=4, cores=2, seed=7, progress_bar=False)
same = time.perf_counter() - t
d = fit.diagnostics(dt)
print(f"{cold:.1f} {same:.1f} {d['r_hat_max']:.4f} {d['ess_bulk_min']:.0f} {d['divergences']}", flush=True)
"""


def _edited_priors(folder: Path) -> Path:
    """A copy of ``priors/`` with one case added (a copy of the first under a new id): an edit that
    changes the model's shapes, as adding a case does."""
    import shutil

    import yaml

    shutil.copytree(REPO / "priors", folder)
    data = yaml.safe_load((folder / "cases.yaml").read_text())
    added = {**data["cases"][0], "id": data["cases"][0]["id"] + "_benchmark_copy"}
    added.pop("also_known_as", None)
    data["cases"].append(added)
    (folder / "cases.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def routes(bare: float, name_contains: str = "") -> None:
    """Each route from empty compile caches: a first fit in a new process and a refit with changed data
    in the same process; a second process with the caches warm; a third after a case is added to
    ``priors/`` (docs/design.md §8 bars: 60 s, 5 s, 30 s after an edit), with each fit's diagnostics."""
    print()
    for name, env, how in ROUTES:
        if name_contains not in name:
            continue
        for v in ("independent", "subtype"):
            with tempfile.TemporaryDirectory() as tmp:
                e = {**os.environ, **env, "PYTENSOR_FLAGS": f"base_compiledir={tmp}/pt", "NUMBA_CACHE_DIR": f"{tmp}/nb",
                     "PALSY_CACHE": f"{tmp}/palsy"}  # JAX keeps its compiled samplers there
                edited = _edited_priors(Path(tmp) / "priors")
                out = []
                for label, priors in (("empty caches", REPO / "priors"), ("warm caches", REPO / "priors"),
                                      ("after a case is added", edited)):
                    t = time.perf_counter()
                    code, argv = (_COLD_FIT_C, [str(priors), v]) if how == "c" else (_COLD_FIT, [str(priors), v, how])
                    r = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, env=e, capture_output=True, text=True)
                    total = time.perf_counter() - t
                    if r.returncode:
                        print(f"{name}, {v}, {label}: failed: {r.stderr.strip().splitlines()[-1:]}")
                        break
                    cold, same, rhat, ess, div = r.stdout.split()
                    out.append((label, total, float(cold), float(same), rhat, ess, div))
            for label, total, cold, same, rhat, ess, div in out:
                # the process up to the end of its first fit: its time less the extra refit it then makes
                row(f"fit {v}, {name}, {label}: process", total - same, 60.0 if label == "empty caches" else 30.0,
                    "python -c 'import numpy'", bare)
                print(f"{'':<58} first fit {cold:.1f} s, refit with changed data in the same process {same:.1f} s "
                      f"(bar 5 s); R-hat {rhat}, bulk ESS {ess}, divergences {div}")


if __name__ == "__main__":
    sys.exit(main())
