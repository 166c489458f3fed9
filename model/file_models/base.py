"""What every file model shares: the strict base class, palsy's messages for pydantic's errors, and the
value types the files use (ids, reference keys, weights, Betas, ...).

A message names the file, the entry, the field, the value given and what is allowed, with a
did-you-mean for a misspelt key or level::

    priors/model.yaml: entry 'w_cas': field 'w_cas': unknown key; did you mean 'w_case'? allowed: causes, ...

Validators raise :class:`Problem` (a ``ValueError``) to name the field and the value of a rule that spans
several fields (``x`` larger than ``n``); :func:`problems` reads it back.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, RootModel

from palsy.model.crossref import did_you_mean, not_allowed
from palsy.model.safe_yaml import brief, item_id

#: Shown when a value is missing altogether (as opposed to ``null``).
_NOTHING = object()


class Problem(ValueError):
    """A problem a validator found: its message, and optionally the field (below the validated object)
    and the value it is about, so that the message names them.

    Parameters
    ----------
    message : str
        What is wrong and what is allowed ("is larger than n = 10").
    field : str, optional
        The field the rule is about, relative to the object being validated (``"x"``).
    value : optional
        The value given (shown briefly); leave it out when the message shows it.
    """

    def __init__(self, message: str, field: str | None = None, value: Any = _NOTHING) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value


class Strict(BaseModel):
    """A mapping whose keys are exactly the fields (unknown keys refused), with values of exactly the
    types declared (no coercion: ``"5"`` is not a number, ``true`` is not 1) and finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              populate_by_name=True)


class Open(BaseModel):
    """A mapping that may carry keys besides its fields (a block whose other keys are data, e.g. levels)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, allow_inf_nan=False)


# --- value types -----------------------------------------------------------------------------------

def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise Problem("give text (not blank)")
    return v


def _id(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise Problem("give the entry's id (text, not blank)")
    return v


def _keys(v: Any) -> tuple[str, ...]:
    """A key or a list of keys of references.yaml (at least one)."""
    keys = [v] if isinstance(v, str) else v
    if isinstance(keys, list) and not keys:
        raise Problem("an empty list; give a key (or a list of keys) of references.yaml")
    if not isinstance(keys, list) or not all(isinstance(k, str) and k.strip() for k in keys):
        raise Problem("must be a key or a list of keys of references.yaml (each one text)")
    return tuple(keys)


def _optional_keys(v: Any) -> tuple[str, ...]:
    """As :func:`_keys`, where ``null`` or an empty list means no reference (an expert judgment)."""
    if v is None or v == []:
        return ()
    return _keys(v)


def _ids(v: Any) -> tuple[str, ...]:
    """A list of ids (text); one id alone is a list of one."""
    ids = [v] if isinstance(v, str) else v
    if not isinstance(ids, list) or not all(isinstance(i, str) and i.strip() for i in ids):
        raise Problem("give a list of ids (each one text, not blank)")
    return tuple(ids)


def _names(v: Any) -> tuple[str, ...]:
    """A level or a list of levels (text)."""
    names = [v] if isinstance(v, str) else v
    if not isinstance(names, list) or not names or not all(isinstance(i, str) and i for i in names):
        raise Problem("give a level or a list of levels")
    return tuple(names)


def _distinct(v: list[Any]) -> list[Any]:
    dup = sorted({str(x) for x in v if v.count(x) > 1})
    if dup:
        raise Problem(f"given twice: {', '.join(dup)}; give each once")
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise Problem("must be a number")
    return float(v)


def interval(low: float, high: float, *, low_open: bool = True, high_open: bool = False) -> Callable[[Any], float]:
    """A validator of a number in an interval, e.g. ``(0, 1]``, named as such in its message."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def check(v: Any) -> float:
        x = _number(v)
        if (x <= low if low_open else x < low) or (x >= high if high_open else x > high):
            raise Problem(f"is not in {shown}")
        return x
    return check


def above(low: float, *, strict: bool = True) -> Callable[[Any], float]:
    """A validator of a number above ``low`` (``> low``, or ``>= low``)."""
    def check(v: Any) -> float:
        x = _number(v)
        if x <= low if strict else x < low:
            raise Problem(f"must be a number {'>' if strict else '>='} {low:g}")
        return x
    return check


Text = Annotated[str, PlainValidator(_text)]
Id = Annotated[str, PlainValidator(_id), Field(default=None, validate_default=True)]  # a missing id is named too
Keys = Annotated[tuple[str, ...], PlainValidator(_keys)]
OptionalKeys = Annotated[tuple[str, ...], PlainValidator(_optional_keys)]
Ids = Annotated[tuple[str, ...], PlainValidator(_ids)]
Levels = Annotated[tuple[str, ...], PlainValidator(_names)]
Number = Annotated[float, PlainValidator(_number)]
Positive = Annotated[float, PlainValidator(above(0))]
NonNegative = Annotated[float, PlainValidator(above(0, strict=False))]
Weight = Annotated[float, PlainValidator(interval(0, 1))]
Probability = Annotated[float, PlainValidator(interval(0, 1, high_open=True))]
Distinct = AfterValidator(_distinct)


#: The Beta parameters the evidence may give: below, draws are exactly 0 or 1 in floating point (log -inf); above,
#: a judgment claims the certainty of more patients than any study had (an attacker's review, s16: a: 1e-300 passed).
BETA_RANGE = (0.05, 1e5)


class Beta(Strict):
    """A Beta distribution ``{a, b}``, each in :data:`BETA_RANGE`."""

    a: Annotated[float, PlainValidator(interval(*BETA_RANGE, low_open=False))]
    b: Annotated[float, PlainValidator(interval(*BETA_RANGE, low_open=False))]


def yes_no_keys(v: Any) -> Any:
    """Unquoted yes/no keys arrive from YAML as booleans: read back as the words written."""
    if isinstance(v, dict):
        return {("yes" if k else "no") if isinstance(k, bool) else k: x for k, x in v.items()}
    return v


def yes_no(v: Any) -> Any:
    """An unquoted yes/no value read back as the word written."""
    return ("yes" if v else "no") if isinstance(v, bool) else v


# --- messages --------------------------------------------------------------------------------------

#: Union members chosen by a discriminator appear in pydantic's locations under their tag: the tag names
#: the model it chose (for the did-you-mean) and is left out of the location shown.
TAGS: dict[str, type[BaseModel] | None] = {}


def tagged(name: str, model: Any) -> Any:
    """``Annotated[model, Tag(name)]``, remembered so that messages drop the tag from the location."""
    TAGS[name] = model if _is_model(model) else None
    return Annotated[model, pydantic.Tag(name)]


def where(loc: tuple[Any, ...]) -> str:
    """A location as written in messages: ``synthesis.selection.nodes[2].level`` (positions from 1)."""
    out = ""
    for part in loc:
        if isinstance(part, str) and part in TAGS:
            continue
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(t: Any) -> Any:
    while True:
        origin = get_origin(t)
        if origin is Annotated:
            t = get_args(t)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(t) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            t = models[0] if len(models) == 1 else (members[0] if len(members) == 1 else t)
            if get_origin(t) in (Union, types.UnionType):
                return t
        else:
            return t


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def model_at(model: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The (nested) model at location ``loc`` of ``model``, if there is one (for a did-you-mean)."""
    t: Any = model
    parts = list(loc)
    while parts:
        t = _unwrap(t)
        part = parts[0]
        if isinstance(part, str) and part in TAGS:
            t = TAGS[part]
            if t is None:
                return None
            parts.pop(0)
            continue
        if _is_model(t) and issubclass(t, RootModel):
            t = t.model_fields["root"].annotation
            continue
        if _is_model(t):
            fields = {(f.alias or n): f for n, f in t.model_fields.items()}
            if part not in fields:
                return None
            t = fields[part].annotation
        elif get_origin(t) in (dict, Mapping, typing.Mapping):
            t = get_args(t)[1]
        elif get_origin(t) in (list, tuple) and get_args(t):
            t = get_args(t)[0]
        else:
            return None
        parts.pop(0)
    t = _unwrap(t)
    if _is_model(t) and issubclass(t, RootModel):
        return None
    return t if _is_model(t) else None


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The keys a mapping of ``model`` may have."""
    return [f.alias or n for n, f in model.model_fields.items()]


_WORDS = {
    "string_type": "must be text", "float_type": "must be a number", "int_type": "must be a whole number",
    "finite_number": "must be a finite number", "bool_type": "must be true or false", "list_type": "must be a list",
    "dict_type": "must be a mapping", "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
    "none_required": "must be null", "string_too_short": "must not be empty",
}


def _message(err: Any) -> str:
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    if kind in _WORDS:
        return _WORDS[kind]
    if kind == "literal_error":
        expected = [x.strip().strip("'") for x in str(ctx.get("expected", "")).replace(" or ", ", ").split(", ")]
        return f"is not allowed{did_you_mean(err.get('input'), expected)}; allowed: {', '.join(expected)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"must be {op} {bound}"
    if kind == "too_short":
        return f"give at least {ctx.get('min_length', 1)} item(s)"
    if kind == "too_long":
        return f"give at most {ctx.get('max_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


EntryOf = Callable[[tuple[Any, ...]], tuple[str, tuple[Any, ...]]]


def entries_by_id(doc: Any, keyed: bool = False) -> EntryOf:
    """Name a location's entry: an item of a top-level list by its ``id`` (or ``#n``); with ``keyed`` (a
    file that maps keys to entries, like ``references.yaml``) a top-level key; otherwise (a file of settings)
    the top-level key, whose field is then the whole location. Returns (entry, the location below it)."""
    def entry_of(loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        if not loc:
            return "-", ()
        head = loc[0]
        items = doc.get(head) if isinstance(doc, dict) else None
        if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(items, list) and loc[1] < len(items):
            return item_id(items[loc[1]], loc[1])[0], loc[2:]
        return str(head), (loc[1:] if keyed else loc)
    return entry_of


def problems(exc: pydantic.ValidationError, file: str, model: type[BaseModel], entry_of: EntryOf | None = None,
             doc: Any = None) -> list[str]:
    """palsy's messages for a validation error of ``model`` read from ``file``: each names the file, the entry,
    the field, the value given and what is allowed.

    Parameters
    ----------
    exc : pydantic.ValidationError
        The error.
    file : str
        The file, as named in messages.
    model : type
        The model validated (for the keys a misspelt key could have meant).
    entry_of : callable, optional
        ``entry_of(loc) -> (entry, location below it)``; default :func:`entries_by_id` of ``doc``.
    doc : optional
        The document validated (to name list items by their id).
    """
    entry_of = entry_of or entries_by_id(doc)
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        given = err.get("input", _NOTHING)
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, Problem):
            if ctx_error.field:
                loc = (*loc, *ctx_error.field.split("."))
            if ctx_error.value is not _NOTHING:
                given = ctx_error.value
            elif ctx_error.field:
                given = _NOTHING
        entry, below = entry_of(loc)
        field = where(below) or "-"
        head = f"{file}: entry {brief(entry)}: field {brief(field)}"
        if kind == "extra_forbidden":
            key = loc[-1]
            owner = model_at(model, loc[:-1])
            allowed = allowed_keys(owner) if owner is not None else []
            hint = did_you_mean(str(key), allowed)
            out.append(f"{head}: unknown key {brief(key)}{hint}" + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
        elif kind == "missing":
            out.append(f"{head}: missing")
        else:
            msg = ctx_error.message if isinstance(ctx_error, Problem) else _message(err)
            shown = "" if given is _NOTHING or isinstance(given, (dict, list)) else f"{brief(given)}: "
            out.append(f"{head}: {shown}{msg}")
    return out


def check(model: type[BaseModel], doc: Any, file: str, entry_of: EntryOf | None = None) -> list[str]:
    """Every problem of ``doc`` read as ``model`` from ``file`` (empty when it is valid)."""
    try:
        model.model_validate(doc)
    except pydantic.ValidationError as exc:
        return problems(exc, file, model, entry_of, doc)
    return []


def validated_items(file_model: type[BaseModel], item_model: type[BaseModel], doc: Any, list_field: str,
                    file: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """A file whose entries are a top-level list: (each valid entry's position and model, every problem).

    The whole file is checked by ``file_model`` (every problem, unknown top-level keys included); the
    entries without a problem are returned read by ``item_model``, so that a loader's checks of meaning
    run on every entry whose shape is right and never see one whose shape is wrong."""
    try:
        file_model.model_validate(doc)
        found: list[str] = []
        bad: set[int] = set()
    except pydantic.ValidationError as exc:
        found = problems(exc, file, file_model, None, doc)
        locs = [tuple(e.get("loc", ())) for e in exc.errors()]
        bad = {loc[1] for loc in locs if len(loc) >= 2 and loc[0] == list_field and isinstance(loc[1], int)}
    items = doc.get(list_field) if isinstance(doc, dict) else None
    if not isinstance(items, list):  # the list itself is wrong (its model said so)
        return [], found
    return [(i, item_model.model_validate(raw)) for i, raw in enumerate(items) if i not in bad], found


__all__ = ["Beta", "Distinct", "Field", "Id", "Ids", "Keys", "Levels", "NonNegative", "Number", "Open", "OptionalKeys",
           "Positive", "Probability", "Problem", "Strict", "Text", "Weight", "above", "allowed_keys", "check", "did_you_mean",
           "entries_by_id", "interval", "model_at", "not_allowed", "problems", "tagged", "validated_items", "where",
           "yes_no", "yes_no_keys"]
