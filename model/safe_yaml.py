"""The one YAML loader for every file palsy reads (patient files, every ``priors/`` file).

On top of pyyaml's safe loader (its C version where available: the warm answer path stays fast):

- every file is read through :func:`read_bytes`: regular files only (a folder, a FIFO, ``/dev/zero``
  or another device is refused before it is read), at most :data:`MAX_BYTES`;
- text must be UTF-8 (the error names the file, the line and the column of the first bad byte);
- a key given twice in a mapping is an error naming the file, the line and the key (pyyaml silently
  keeps the last one), and so is a merge key (``<<``), which gives a key a second value unsaid;
- aliases may not expand the document by more than :data:`MAX_ALIAS_NODES` nodes, and recursive
  aliases are refused: an alias bomb is refused *before* it is constructed, so no expanded value
  exists to be printed;
- syntax errors keep their line and column.

Every problem is a :class:`YAMLInputError` (a ``ValueError``: bad input, exit status 2). Values in
messages go through :func:`brief`, a bounded ``repr``. Standard library and pyyaml only.
"""

from __future__ import annotations

import os
import reprlib
import stat
import unicodedata
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

#: The largest file palsy reads (``priors/cohorts.yaml``, the largest, is about 120 kB).
MAX_BYTES = 4 * 1024 * 1024
#: How many nodes aliases may add to a document beyond those written out (``priors/`` uses none).
MAX_ALIAS_NODES = 10_000
#: The deepest nesting of mappings and sequences accepted (the real files nest less than 10 deep).
MAX_DEPTH = 100

_MERGE_TAG = "tag:yaml.org,2002:merge"
#: What pyyaml's constructors raise on a value they cannot build (besides its own YAMLError).
_VALUE_ERRORS = (ValueError, TypeError, AttributeError, OverflowError, KeyError, IndexError)

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 8
_repr.maxlevel = 3


def brief(value: Any) -> str:
    """``repr(value)``, shortened: long strings and large or deep containers are cut (``...``).

    Messages about bad input show the value given through this, never a whole expanded value. A text with a
    character that reads as an ASCII one (a dash, space or symbol beyond ASCII, a Greek or Cyrillic letter) is shown
    escaped too: 'T‑ALL' with a non-breaking hyphen had read as the 'T-ALL' it was said not to be (an attacker's
    review, s16)."""
    try:
        text = _repr.repr(value)
    except Exception:  # a value whose repr fails is still named
        return f"<{type(value).__name__}>"
    if isinstance(value, str) and not value.isascii() and any(_looks_ascii(c) and c.isprintable() for c in value):
        escaped = value.encode("ascii", "backslashreplace").decode("ascii")
        text += f" (written '{escaped if len(escaped) <= 80 else escaped[:77] + '...'}')"
    return text


def _looks_ascii(ch: str) -> bool:
    """Whether a character beyond ASCII may be read as an ASCII one."""
    if ch.isascii():
        return False
    return unicodedata.category(ch)[0] in "PZSC" or unicodedata.name(ch, "").startswith(("CYRILLIC", "GREEK"))


def item_id(item: Any, index: int) -> tuple[str, bool]:
    """The label of the ``index``-th item of a list of mappings (its ``id``, or '#<n>' by position when it
    has none that can serve) and whether its ``id`` is valid: text that is not blank."""
    raw = item.get("id") if isinstance(item, dict) else None
    if isinstance(raw, str) and raw.strip():
        return raw, True
    return f"#{index + 1}", False


class YAMLInputError(ValueError):
    """A file that cannot be read as the YAML palsy accepts: names the file (and line and column)."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None, column: int | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.column = column
        super().__init__(f"{self.path}: {self.detail}")

    @property
    def detail(self) -> str:
        """The problem with its position, without the file name: ``problem (line L, column C)``."""
        if self.line is None:
            return self.problem
        where = f"line {self.line}" + (f", column {self.column}" if self.column is not None else "")
        return f"{self.problem} ({where})"


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def read_bytes(path: str | Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the regular file ``path``, refusing folders, devices, FIFOs and files over ``limit``.

    The file is opened without blocking (a FIFO with no writer does not hang) and checked with
    ``fstat`` on the open descriptor before anything is read.

    Raises
    ------
    YAMLInputError
        Naming the path and what is wrong (missing, not a regular file, too large, unreadable).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise YAMLInputError(path, "no such file") from None
    except IsADirectoryError:
        raise YAMLInputError(path, "is a folder, not a file") from None
    except OSError as exc:
        raise YAMLInputError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise YAMLInputError(path, "is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise YAMLInputError(path, "is not a regular file (a device, FIFO or socket); give a file")
        if st.st_size > limit:
            raise YAMLInputError(path, f"is {_size(st.st_size)}; files palsy reads are at most {_size(limit)}")
        chunks, total = [], 0
        while True:  # read at most limit + 1 bytes: a file growing while read is still bounded
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise YAMLInputError(path, f"is larger than {_size(limit)}, the most palsy reads")
        return b"".join(chunks)
    except OSError as exc:
        raise YAMLInputError(path, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def decode(data: bytes, path: str | Path) -> str:
    """UTF-8 text (a leading byte-order mark is dropped); the error names the file, line and column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise YAMLInputError(path, f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8",
                             line, column) from None


def read_text(path: str | Path, limit: int = MAX_BYTES) -> str:
    """:func:`read_bytes` then :func:`decode`."""
    return decode(read_bytes(path, limit), path)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_node(root: Node, path: str | Path) -> None:
    """Refuse recursive aliases, nesting deeper than :data:`MAX_DEPTH`, and aliases expanding the
    document by more than :data:`MAX_ALIAS_NODES` nodes. Iterative, linear in the nodes written."""
    sizes: dict[int, int] = {}  # id(node) -> size with every alias expanded
    active: set[int] = set()  # the nodes on the current path
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        nid = id(node)
        if done:
            active.discard(nid)
            sizes[nid] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if nid in sizes:
            continue
        mark = node.start_mark
        if nid in active:
            raise YAMLInputError(path, "an alias refers to a node that contains it (recursive aliases are refused)",
                                 mark.line + 1, mark.column + 1)
        if depth > MAX_DEPTH:
            raise YAMLInputError(path, f"nested deeper than {MAX_DEPTH} levels", mark.line + 1, mark.column + 1)
        active.add(nid)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))
    extra = sizes[id(root)] - len(sizes)
    if extra > MAX_ALIAS_NODES:
        raise YAMLInputError(path, f"aliases (*name) would expand it by {extra:,} nodes; at most {MAX_ALIAS_NODES:,} "
                                   f"are allowed (write the values out)")


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc, valid-type]
    """pyyaml's safe loader that refuses duplicate keys and alias bombs (see the module docstring)."""

    source: str = "<input>"

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            first: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:  # it gives a key a second value unsaid, which wins by pyyaml's order
                    raise ConstructorError(None, None, "a merge key (<<) is not accepted: write each key once",
                                           key_node.start_mark)
                key = self.construct_object(key_node, deep=True)
                try:
                    prev = first.get(key)
                except TypeError:  # unhashable: pyyaml's own error says so
                    continue
                if prev is not None:
                    raise ConstructorError(
                        None, None,
                        f"key {brief(key)} is given twice, first at line {prev.start_mark.line + 1}; give each key once",
                        key_node.start_mark)
                first[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node, deep=False):
        # a value pyyaml's constructors fail on (``2021-13-45``, ``!!float abc``) is an error at its node
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except _VALUE_ERRORS as exc:
            raise ConstructorError(None, None, f"cannot read this value ({exc})", node.start_mark) from None

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        check_node(node, self.source)
        return self.construct_document(node)


def _position(exc: yaml.YAMLError, text: str) -> tuple[int | None, int | None]:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1, mark.column + 1
    position = getattr(exc, "position", None)  # a ReaderError (a character YAML does not allow)
    if isinstance(position, int):
        before = text[:position]
        return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1
    return None, None


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        return "; ".join(parts) or "not valid YAML"
    if isinstance(exc, yaml.reader.ReaderError):
        ch = exc.character
        code = ch if isinstance(ch, int) else ord(ch) if isinstance(ch, str) and len(ch) == 1 else None
        return f"character U+{code:04X} is not allowed in YAML" if code is not None else "a character YAML does not allow"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def loads(text: str, source: str | Path = "<input>") -> Any:
    """Parse one YAML document from ``text`` (``source`` names it in errors)."""
    loader = Loader(text)
    loader.source = str(source)
    try:
        return loader.get_single_data()
    except YAMLInputError:
        raise
    except yaml.YAMLError as exc:
        line, column = _position(exc, text)
        raise YAMLInputError(source, f"not valid YAML: {_problem(exc)}", line, column) from None
    except RecursionError:
        raise YAMLInputError(source, f"nested deeper than {MAX_DEPTH} levels") from None
    except _VALUE_ERRORS as exc:  # a backstop: whatever else fails while reading is a file palsy cannot read
        raise YAMLInputError(source, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def load(path: str | Path, limit: int = MAX_BYTES) -> Any:
    """Read, decode and parse the YAML file ``path`` (see the module docstring)."""
    return loads(read_text(path, limit), path)
