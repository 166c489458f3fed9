"""JSON read strictly, for the FHIR a command reads (``--fhir``), the service's request bodies and its JWK Set
files: a member name given twice in one object is refused (Python's ``json`` keeps the last one, so a
positive CSF cytology followed by a negative one under the same key was read as negative without a word,
s16 review S6), as are ``NaN`` and ``Infinity`` (not JSON numbers), a number of more than Python's 4300
digits and nesting too deep for the parser; each refusal is a :class:`JSONInputError` whose message says
what is wrong and where, by line and column or by the path of keys and positions, never by a value of the
document (which may be a patient's).

The duplicate check costs one Python call per JSON object: about 30 microseconds more for a 5 kB CDS Hooks
request body than ``json.loads`` (29 -> 59 us, measured 6 December), against the tens of milliseconds of
a card.
"""

from __future__ import annotations

import json
from typing import Any


class JSONInputError(ValueError):
    """A document that is not JSON as palsy reads it; ``detail`` says what and where (no value of it)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Twice(dict):
    """An object that had a member name twice (found after the parse, to name where it is)."""

    key: str = ""


def _refuse_constant(name: str) -> Any:
    raise JSONInputError(f"not JSON: {name} is not a JSON number")


def loads(text: str | bytes) -> Any:
    """``text`` parsed as JSON, strictly (the module's rules).

    Raises
    ------
    JSONInputError
        Not JSON (with line and column), not UTF-8/16/32 text, ``NaN``/``Infinity``, a number over 4300
        digits, nesting too deep, or a member name given twice in one object (naming the key and the path of
        the object, with the type of the FHIR resource it is in)."""
    twice: list[_Twice] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(items)
        if len(d) != len(items):
            seen: set[str] = set()
            t = _Twice(d)
            t.key = next(k for k, _ in items if k in seen or seen.add(k))
            twice.append(t)
            return t
        return d

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_refuse_constant)
    except JSONInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONInputError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise JSONInputError(f"not JSON: not text in UTF-8, UTF-16 or UTF-32 (byte {exc.start} cannot be read as "
                             f"{exc.encoding})") from None
    except RecursionError:
        raise JSONInputError("not JSON palsy reads: nested too deep (arrays or objects within each other beyond "
                             "what the parser follows; a FHIR resource nests a few levels)") from None
    except ValueError as exc:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        if "digits" in str(exc):
            raise JSONInputError("not JSON palsy reads: a number of more than 4300 digits") from None
        raise JSONInputError(f"not JSON: {str(exc)[:80]}") from None
    if twice:
        path, resource = _where(data, twice[0])
        key = twice[0].key
        shown = key if len(key) <= 40 else key[:40] + "..."
        inside = f" (resourceType {resource})" if resource else ""
        raise JSONInputError(f"{path or 'the top-level object'}{inside}: the key {shown!r} is given twice in one "
                             f"object; JSON readers differ on which one counts, so give each key once")
    return data


def _where(data: Any, target: dict) -> tuple[str, str | None]:
    """The path of ``target`` in ``data`` (keys and positions) and the ``resourceType`` of the innermost
    resource holding it (or it), found without recursion (the document may nest deep)."""
    stack: list[tuple[Any, str, str | None]] = [(data, "", None)]
    while stack:
        node, path, resource = stack.pop()
        if isinstance(node, dict):
            kind = node.get("resourceType")
            resource = kind if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 40 else resource
            if node is target:
                return path, resource
            for k, v in node.items():
                if isinstance(v, (dict, list)):
                    name = k if k.isidentifier() and len(k) <= 40 else repr(k[:40])
                    stack.append((v, f"{path}.{name}" if path else name, resource))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, (dict, list)):
                    stack.append((v, f"{path}[{i}]", resource))
    return "", None
