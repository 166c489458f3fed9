"""Model criticism, numbers only (docs/design.md §6, the statistician's report). Nothing here draws:
:mod:`palsy.reports.check` presents these numbers. PyMC and ArviZ are imported lazily.

One module per concept:

- :mod:`~palsy.model.criticism.common`: the fit's likelihood terms in numpy, scalar labels, refit draws, JSON;
- :mod:`~palsy.model.criticism.parameters`: the sampled parameters (theta, omega): diagnostics, prior
  against posterior, power-scaling sensitivity;
- :mod:`~palsy.model.criticism.predictive`: predictive checks on the case library and the cohort counts;
- :mod:`~palsy.model.criticism.loo`: PSIS-LOO and the comparison of the variants;
- :mod:`~palsy.model.criticism.sensitivity`: sensitivity of patients' P(infiltration) to w_case, the
  pretest, each evidence source, each expert judgment (exact refits), each rate factor, and its
  power-scaling derivative;
- :mod:`~palsy.model.criticism.synthesis`: heterogeneity of pooled quantities (the spread tau, the new-setting
  predictive, leave-one-study-out checks) and the case-selection model (gamma; likelihood ratios of the
  striking features with and without it);
- :mod:`~palsy.model.criticism.validation`: the validation split of published cases kept out of the fit;
- :mod:`~palsy.model.criticism.implied`: what the rate model implies (cumulative relapse and leukaemic
  palsy per lineage, cause shares) beside the targets of ``rates.yaml``;
- :mod:`~palsy.model.criticism.run`: everything the report shows, in one call.

Parameter draws are dicts of numpy arrays with a leading ``sample`` dim (as in
:class:`palsy.model.draws.Draws`). Only theta and omega are sampled by NUTS; the rate block is drawn exactly
from its prior and has no likelihood, so it appears in the report through its implied quantities.
"""

from palsy.model.prior import draws as prior_draws
from palsy.model.prior import log_density as log_prior

from .common import CI, PRIOR_ONLY, case_loglik_marginal, draws_from_fit, element_labels, loglik_terms, to_json
from .implied import implied as implied_rates
from .loo import compare_variants, informative_cases, loo, loo_datatree
from .parameters import data_informed, element, psense, scalar_table
from .predictive import Statistic, case_facts, cohort_checks, default_statistics, predictive_checks
from .run import run_all
from .sensitivity import Source, answer_sensitivity, load_patients, load_vignettes, source_log_ratio, sources
from .synthesis import heterogeneity, selection
from .validation import score as score_validation

__all__ = [
    "CI", "PRIOR_ONLY", "Source", "Statistic", "answer_sensitivity", "case_facts", "case_loglik_marginal",
    "cohort_checks", "compare_variants", "data_informed", "default_statistics", "draws_from_fit", "element",
    "element_labels", "implied_rates", "informative_cases", "load_patients", "log_prior", "loglik_terms", "loo",
    "heterogeneity", "load_vignettes", "loo_datatree", "predictive_checks", "score_validation", "selection",
    "prior_draws", "psense", "run_all", "scalar_table",
    "source_log_ratio", "sources", "to_json",
]
