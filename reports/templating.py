"""The one jinja2 environment of every page palsy writes (report, check, lesson, handout, cases, page).

Templates come from ``reports/templates/``; every value is escaped for HTML; a name a template uses
that its context lacks is an error (StrictUndefined), never an empty string on a clinician's page. The
statistician's report (``check.html``) is the one exception (``strict=False``): which of its sections
and keys exist depends on the run (``--quick``, ``--no-refit``, a registry), and a missing optional value
prints as a dash rather than losing the whole report after an hour of refits.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def environment(strict: bool = True) -> Any:  # -> jinja2.Environment (jinja2 imported only when rendering)
    """The environment (made once per process and strictness); a report adds its own filters with
    :func:`with_filters`."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
                              keep_trailing_newline=True)


def with_filters(strict: bool = True, **filters: Any) -> Any:
    """The environment with ``filters`` registered (a name already registered must be the same function)."""
    env = environment(strict)
    for name, fn in filters.items():
        if env.filters.get(name, fn) is not fn:
            raise ValueError(f"template filter {name!r} is registered twice with different functions")
        env.filters[name] = fn
    return env
