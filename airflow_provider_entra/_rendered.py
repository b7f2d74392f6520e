"""Values that reach a task as text because Jinja rendered them.

A templated argument holding a dict or a list (an upstream task's XCom, a Param) arrives as text when the DAG
does not set ``render_template_as_native_obj=True``: JSON when it was rendered with ``tojson``, otherwise
Python's ``repr`` (single quotes, ``True``, ``None``). :func:`parse_rendered` reads either.

Pure standard library: no Airflow import.
"""

from __future__ import annotations

import ast
import json
from typing import Any

__all__ = ["parse_rendered"]


def parse_rendered(text: str) -> Any:
    """The value behind rendered ``text``: JSON first, else a Python literal.

    :param text: the rendered value (surrounding white space is ignored).
    :raises ValueError: ``text`` is neither JSON nor a Python literal.
    """
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError("the text is neither JSON nor a Python literal") from None
