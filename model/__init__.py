"""palsy's computation layer: evidence, model, posterior and a patient's answer.

The public API (see README, "Python API"):

>>> from model import evidence, fit, answer, findings
>>> ev = evidence.load("priors")
>>> post = fit.posterior("independent", ev)
>>> patient = findings.parse_patient({"laterality": "bilateral"}, source="example")
>>> answer.answer(patient, post.draws).probability.mean
"""

__version__ = "0.1.0"
