"""The one error the SCIM layer raises for a bad mapping."""

from __future__ import annotations


class MappingError(ValueError):
    """A mapping that cannot be used: an unknown SCIM path, a wrong value spec, a missing HR column...

    The message names the offending SCIM path (or HR column) so that it can be fixed from the message alone.

    :param message: what is wrong and how to fix it.
    :param path: the SCIM attribute path concerned, when there is one.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
