"""A small, safe expression language for computed true/false values (``active`` and the like).

No Python is evaluated: a tokenizer and a recursive-descent parser turn the text into a tree of the
operations below, which run on whole columns with pyarrow compute.

Grammar (keywords are case-insensitive; column names are case-sensitive)::

    expr     := or
    or       := and (("or" | "-or") and)*
    and      := not (("and" | "-and") not)*
    not      := ("not" | "-not" | "!") not | test
    test     := value ("==" | "!=" | "-eq" | "-ne" | "-ceq" | "-cne") value
              | value ["not"] "in" list | value ("-in" | "-notin") list
              | value "is" ["not"] "empty"
              | "true" | "false" | "(" expr ")"
    value    := Column | `Column with spaces` | $_.Column | $_.'Column' | "text" | 'text'
              | ("lower" | "upper" | "trim") "(" value ")"
    list     := ("[" | "(") "text" ("," "text")* ("]" | ")")

Semantics:

- ``==``, ``!=``, ``in`` compare exactly; PowerShell's ``-eq``, ``-ne``, ``-in``, ``-notin`` ignore case as
  they do in CSV2SCIM's ``AttributeMapping.psd1`` script blocks (``-ceq``/``-cne`` respect it).
- An empty cell equals nothing: ``X == "a"`` is false and ``X != "a"`` is true when X is empty;
  ``X == ""`` is the same as ``X is empty``.

>>> parse_expression('WorkerStatus == "Active" and not WorkerType in ["Intern", "Temp"]').columns
('WorkerStatus', 'WorkerType')
>>> parse_expression("$_.'WorkerStatus' -eq 'Active'").columns
('WorkerStatus',)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_entra.scim.errors import MappingError

_LS = pa.large_string()

#: Returns the values of an HR column for the rows being evaluated (``None`` for empty cells).
ColumnGetter = Callable[[str], pa.Array]


class _Node:
    kind: str  # "string" or "boolean"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array | pa.Scalar:
        raise NotImplementedError

    def columns(self) -> list[str]:
        return []


@dataclass
class _Column(_Node):
    name: str
    kind: str = "string"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        return get(self.name)

    def columns(self) -> list[str]:
        return [self.name]


@dataclass
class _Text(_Node):
    value: str
    kind: str = "string"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Scalar:
        return pa.scalar(self.value, _LS)


@dataclass
class _Bool(_Node):
    value: bool
    kind: str = "boolean"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        return pa.array(np.full(n, self.value))


_FUNCTIONS: dict[str, tuple[Callable[[pa.Array], pa.Array], Callable[[str], str]]] = {
    "lower": (pc.utf8_lower, str.lower),
    "upper": (pc.utf8_upper, str.upper),
    "trim": (pc.utf8_trim_whitespace, str.strip),
}


@dataclass
class _Call(_Node):
    function: str
    argument: _Node
    kind: str = "string"

    def columns(self) -> list[str]:
        return self.argument.columns()

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array | pa.Scalar:
        value = self.argument.evaluate(get, n)
        vector, scalar = _FUNCTIONS[self.function]
        if isinstance(value, pa.Scalar):
            return pa.scalar(None if value.as_py() is None else scalar(value.as_py()), _LS)
        result = vector(value)
        if self.function == "trim":  # a cell of spaces is empty
            result = pc.if_else(pc.equal(pc.binary_length(result), 0), pa.scalar(None, _LS), result)
        return result


def _full(value: pa.Array | pa.Scalar, n: int) -> pa.Array:
    if isinstance(value, pa.Scalar):
        return pa.array(np.full(n, bool(value.as_py())))
    return value


def _folded(value: pa.Array | pa.Scalar) -> pa.Array | pa.Scalar:
    if isinstance(value, pa.Scalar):
        return pa.scalar(None if value.as_py() is None else value.as_py().lower(), _LS)
    return pc.utf8_lower(value)


@dataclass
class _Compare(_Node):
    left: _Node
    right: _Node
    negate: bool
    ignore_case: bool
    kind: str = "boolean"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        left, right = self.left.evaluate(get, n), self.right.evaluate(get, n)
        if self.ignore_case:
            left, right = _folded(left), _folded(right)
        if isinstance(left, pa.Scalar) and isinstance(right, pa.Scalar):
            same = left.as_py() is not None and left.as_py() == right.as_py()
            return _full(pa.scalar(same != self.negate), n)
        if self.negate:
            return _full(pc.fill_null(pc.not_equal(left, right), True), n)
        return _full(pc.fill_null(pc.equal(left, right), False), n)

    def columns(self) -> list[str]:
        return self.left.columns() + self.right.columns()


@dataclass
class _In(_Node):
    value: _Node
    options: tuple[str, ...]
    negate: bool
    ignore_case: bool
    kind: str = "boolean"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        value = self.value.evaluate(get, n)
        options = [o.lower() for o in self.options] if self.ignore_case else list(self.options)
        if self.ignore_case:
            value = _folded(value)
        if isinstance(value, pa.Scalar):
            hit = value.as_py() is not None and value.as_py() in options
            return _full(pa.scalar(hit != self.negate), n)
        hit = pc.fill_null(pc.is_in(value, value_set=pa.array(options, _LS)), False)
        return pc.invert(hit) if self.negate else hit

    def columns(self) -> list[str]:
        return self.value.columns()


@dataclass
class _IsEmpty(_Node):
    value: _Node
    negate: bool
    kind: str = "boolean"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        value = self.value.evaluate(get, n)
        if isinstance(value, pa.Scalar):
            return _full(pa.scalar((value.as_py() in (None, "")) != self.negate), n)
        empty = pc.is_null(value)
        return pc.invert(empty) if self.negate else empty

    def columns(self) -> list[str]:
        return self.value.columns()


@dataclass
class _Not(_Node):
    operand: _Node
    kind: str = "boolean"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        return pc.invert(self.operand.evaluate(get, n))

    def columns(self) -> list[str]:
        return self.operand.columns()


@dataclass
class _Logic(_Node):
    operator: str
    operands: list[_Node]
    kind: str = "boolean"

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        combine = pc.and_ if self.operator == "and" else pc.or_
        result = self.operands[0].evaluate(get, n)
        for operand in self.operands[1:]:
            result = combine(result, operand.evaluate(get, n))
        return result

    def columns(self) -> list[str]:
        return [c for operand in self.operands for c in operand.columns()]


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<backtick>`[^`]+`)
      | (?P<ps_column>\$_\.(?:'[^']+'|"[^"]+"|[A-Za-z_][\w]*))
      | (?P<op>==|!=|-ceq\b|-cne\b|-eq\b|-ne\b|-and\b|-or\b|-not\b|-notin\b|-in\b|[()\[\],!])
      | (?P<name>[A-Za-z_][\w]*)
      | (?P<number>[+-]?\d+(?:\.\d+)?)
      | (?P<bad>\S)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "true", "false"}


@dataclass
class _Token:
    kind: str  # string, column, op, keyword, end
    text: str
    position: int


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:  # only trailing whitespace left
            break
        start = match.start(match.lastgroup) if match.lastgroup else position
        position = match.end()
        group, text = match.lastgroup, match[match.lastgroup or 0]
        if group == "string":
            tokens.append(_Token("string", _unquote(text), start))
        elif group == "backtick":
            tokens.append(_Token("column", text[1:-1], start))
        elif group == "ps_column":
            name = text[3:]
            tokens.append(_Token("column", name[1:-1] if name[0] in "'\"" else name, start))
        elif group == "op":
            tokens.append(_Token("op", text.lower(), start))
        elif group == "number":
            tokens.append(_Token("number", text, start))
        elif group == "name":
            lowered = text.lower()
            if lowered in _KEYWORDS:
                tokens.append(_Token("keyword", lowered, start))
            else:
                tokens.append(_Token("name", text, start))
        else:
            raise MappingError(f"unexpected character {text!r} at position {start} in expression {source!r}")
    tokens.append(_Token("end", "", len(source)))
    return tokens


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0

    # helpers
    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def _error(self, message: str) -> MappingError:
        return MappingError(f"{message} at position {self.token.position} in expression {self.source!r}")

    def _accept(self, kind: str, *texts: str) -> _Token | None:
        token = self.token
        if token.kind == kind and (not texts or token.text in texts):
            self.index += 1
            return token
        return None

    def _expect(self, kind: str, text: str) -> None:
        if self._accept(kind, text) is None:
            found = self.token.text or "end of expression"
            raise self._error(f"expected {text!r}, found {found!r}")

    def _boolean(self, node: _Node, what: str) -> _Node:
        if node.kind != "boolean":
            raise self._error(
                f"{what} needs a true/false test such as 'Column == \"value\"', not a bare value"
            )
        return node

    # grammar
    def parse(self) -> _Node:
        node = self._or()
        if self.token.kind != "end":
            raise self._error(f"unexpected {self.token.text!r}")
        return self._boolean(node, "the expression")

    def _or(self) -> _Node:
        operands = [self._and()]
        while self._accept("keyword", "or") or self._accept("op", "-or"):
            operands.append(self._boolean(self._and(), "'or'"))
        if len(operands) == 1:
            return operands[0]
        self._boolean(operands[0], "'or'")
        return _Logic("or", operands)

    def _and(self) -> _Node:
        operands = [self._not()]
        while self._accept("keyword", "and") or self._accept("op", "-and"):
            operands.append(self._boolean(self._not(), "'and'"))
        if len(operands) == 1:
            return operands[0]
        self._boolean(operands[0], "'and'")
        return _Logic("and", operands)

    def _not(self) -> _Node:
        if self._accept("keyword", "not") or self._accept("op", "-not", "!"):
            return _Not(self._boolean(self._not(), "'not'"))
        return self._test()

    def _test(self) -> _Node:
        if self.token.kind == "op" and self.token.text == "(":
            self.index += 1
            node = self._or()
            self._expect("op", ")")
            return node
        if token := self._accept("keyword", "true", "false"):
            return _Bool(token.text == "true")
        left = self._value()
        if op := self._accept("op", "==", "!=", "-eq", "-ne", "-ceq", "-cne"):
            right = self._value()
            negate = op.text in ("!=", "-ne", "-cne")
            for side, other in ((left, right), (right, left)):
                if isinstance(side, _Text) and side.value == "":
                    return _IsEmpty(other, negate=negate)
            return _Compare(left, right, negate, ignore_case=op.text in ("-eq", "-ne"))
        if op := self._accept("op", "-in", "-notin"):
            return _In(left, self._list(), negate=op.text == "-notin", ignore_case=True)
        if self.token.kind == "keyword" and self.token.text in ("not", "in"):
            negate = self._accept("keyword", "not") is not None
            self._expect("keyword", "in")
            return _In(left, self._list(), negate=negate, ignore_case=False)
        if self._accept("keyword", "is"):
            negate = self._accept("keyword", "not") is not None
            self._expect("keyword", "empty")
            return _IsEmpty(left, negate=negate)
        return left

    def _value(self) -> _Node:
        if token := self._accept("string"):
            return _Text(token.text)
        if token := self._accept("column"):
            return _Column(token.text)
        if token := self._accept("name"):
            if token.text.lower() in _FUNCTIONS and self.token.kind == "op" and self.token.text == "(":
                self.index += 1
                argument = self._value()
                self._expect("op", ")")
                return _Call(token.text.lower(), argument)
            if self.token.kind == "op" and self.token.text == "(":
                raise self._error(
                    f"unknown function {token.text!r} (only {', '.join(sorted(_FUNCTIONS))} are available)"
                )
            return _Column(token.text)
        if self.token.kind == "number":
            raise self._error(
                f'HR values are texts: write the number {self.token.text} as "{self.token.text}"'
            )
        found = self.token.text or "end of expression"
        raise self._error(f"expected a column name or a quoted text, found {found!r}")

    def _list(self) -> tuple[str, ...]:
        """``["a", "b"]``, ``("a", "b")``, or PowerShell's bare ``'a', 'b'``."""
        closing = "]" if self._accept("op", "[") else ")" if self._accept("op", "(") else None
        if closing is None and self.token.kind != "string":
            raise self._error('expected a list such as ["a", "b"]')
        items: list[str] = []
        while True:
            token = self._accept("string")
            if token is None:
                raise self._error("list items must be quoted texts")
            items.append(token.text)
            if not self._accept("op", ","):
                break
        if closing is not None:
            self._expect("op", closing)
        return tuple(items)


@dataclass(frozen=True)
class Expression:
    """A parsed true/false expression over HR columns.

    :param source: the text it was parsed from.
    """

    source: str
    _tree: _Node

    @property
    def columns(self) -> tuple[str, ...]:
        """The HR columns the expression reads, in order of first use."""
        return tuple(dict.fromkeys(self._tree.columns()))

    def evaluate(self, get: ColumnGetter, n: int) -> pa.Array:
        """Evaluate on ``n`` rows; never null.

        :param get: returns the values of a column for those rows, empty cells as nulls.
        :param n: the number of rows.
        """
        result = self._tree.evaluate(get, n)
        return _full(result, n)


def parse_expression(source: str) -> Expression:
    """Parse a true/false expression.

    :param source: the expression text, e.g. ``WorkerStatus == "Active"``.
    :raises MappingError: with the position of the problem.
    """
    if not isinstance(source, str) or not source.strip():
        raise MappingError(f"an expression must be a non-empty text, got {source!r}")
    return Expression(source, _Parser(source).parse())
