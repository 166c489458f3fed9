"""Pydantic models of every file palsy reads, and their errors in palsy's words.

One module per group of files: :mod:`.schema_file` (``schema.yaml``), :mod:`.evidence_files`
(``references.yaml``, ``model.yaml``, ``cases.yaml``, ``cohorts.yaml``), :mod:`.rates_file`
(``rates.yaml``), :mod:`.care_files` (``decision.yaml``, ``actions.yaml``, ``validation.yaml``,
``teaching_cases.yaml``, ``fhir_map.yaml``); :mod:`.published` derives the JSON Schemas of a patient
file and of an answer. :mod:`.base` turns pydantic's errors into palsy's messages (file, entry, field,
value, what is allowed; a did-you-mean for a misspelt key).

Every model refuses unknown keys and coerces nothing. The YAML is read by :mod:`palsy.model.safe_yaml`
first (duplicate keys, aliases and tags refused, which plain loaders do not do). What a value means in
another file is checked by :mod:`palsy.model.crossref`. Imported only where files are validated: never on
the warm answer path (pydantic's import alone costs a noticeable part of a query).
"""

from palsy.model.file_models.base import Problem, check, problems
from palsy.model.file_models.schema_file import SchemaFile, validate_schema

__all__ = ["Problem", "SchemaFile", "check", "problems", "validate_schema"]
