"""The one sanitiser for text printed to a terminal.

Ids, descriptions, keys and values come from files and flags a user (or an attacker) wrote. Printed as
they are, an escape sequence can recolour or erase the screen, ``\\r`` can overwrite the real answer
and ``\\n`` can add a fake line. Every command prints user text through :func:`line` (one output line)
or :func:`lines` (several), which make such characters visible instead of executing them:

- C0 and C1 control characters (escape, ``\\r``, ``\\n``, tab, backspace, ...) become ``\\x1b``, ``\\r``,
  ``\\n``, ``\\t`` ...;
- characters that reorder or hide text (bidirectional overrides and isolates, zero-width characters,
  line and paragraph separators, unpaired surrogates) become ``\\u202e`` and so on.

Printable text, including non-Latin scripts and emoji, is left as it is. Standard library only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Unicode categories made visible: controls, format characters (bidi overrides, zero-width
# joiners, ...), line and paragraph separators, surrogates, private use and unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
#: Default cap on one printed line (a long description is cut, with the number of characters left out).
MAX_LINE = 2000


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _visible(ch: str) -> bool:
    return ch == " " or unicodedata.category(ch) not in _HIDDEN


def line(text: object, limit: int | None = MAX_LINE) -> str:
    """``text`` as one safe line: every hidden or control character (``\\n`` included) made visible.

    ``limit`` caps the length (``None``: no cap); what is cut is counted, not dropped silently."""
    s = str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit]
        cut = len(str(text)) - limit
    else:
        cut = 0
    out = s if s.isascii() and s.isprintable() else "".join(ch if _visible(ch) else _escape(ch) for ch in s)
    return out + (f"... [{cut:,} more characters]" if cut else "")


def lines(items: Iterable[object], limit: int | None = MAX_LINE) -> str:
    """Several lines, each through :func:`line`, joined by newlines (no trailing newline)."""
    return "\n".join(line(item, limit) for item in items)


def text(block: str, limit: int | None = MAX_LINE) -> str:
    """A block whose own newlines are trusted (a message built by palsy): each line made safe."""
    return lines(block.split("\n"), limit)


def problems(header: str, items: Iterable[object]) -> str:
    """An error message: ``header`` then one ``  - item`` line per problem, each made safe, so a
    newline inside a problem cannot start a line of its own."""
    return lines([header, *(f"  - {p}" for p in items)])
