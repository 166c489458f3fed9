"""palsy's computation layer: evidence, model, posterior and a patient's answer.

The public API (see README, "Python API"):

>>> from palsy.model import evidence, fit, answer, findings
>>> ev = evidence.load()
>>> post = fit.posterior("independent", ev)
>>> patient = findings.parse_patient({"laterality": "bilateral"}, source="example")
>>> answer.answer(patient, post.draws).probability.mean
"""

from palsy import __version__

__all__ = ["__version__"]
