"""Line numbers of the keys of a YAML (or JSON) mapping file, from PyYAML's node tree.

The file is composed (parsed into nodes, nothing constructed), so each key keeps the line it was written on;
errors found later on the plain data are then located by their key path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import yaml

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Duplicate:
    """A key written twice in one block."""

    path: KeyPath
    line: int
    first_line: int


@dataclass
class KeyLines:
    """Key path (``("source", "dates", "format")``, list items by index) -> 1-based line."""

    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)
    #: a file without an ``attributes`` key is its attributes block: ("attributes", k) is written as (k,)
    bare: bool = False

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its nearest written parent; ``None`` when nothing of it is written."""
        key = tuple(path)
        if self.bare and key[:1] == ("attributes",):
            key = key[1:]
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def under(self, prefix: Sequence[str | int]) -> Iterator[tuple[KeyPath, int]]:
        """Every written key path below ``prefix`` (paths given relative to it), with its line."""
        start = tuple(prefix)
        if self.bare and start[:1] == ("attributes",):
            start = start[1:]
        for key, line in self.lines.items():
            if key[: len(start)] == start and len(key) > len(start):
                yield key[len(start) :], line


def key_lines(text: str) -> KeyLines:
    """Compose ``text`` and record where every key is; an unparseable text gives no lines."""
    out = KeyLines()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out
    if root is not None:
        _walk(root, (), out)
    return out


def _walk(node: yaml.Node, path: KeyPath, out: KeyLines) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                out.duplicates.append(Duplicate(path + (key,), line, seen[key]))
                continue
            seen[key] = line
            out.lines[path + (key,)] = line
            _walk(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out.lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), out)
