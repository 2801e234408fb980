"""What a format needs to know about a tool: its name, a description and a parameter schema."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

__all__ = ["ToolSpec"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the prompt and the grammar see it.

    Parameters
    ----------
    name : str
        1-64 characters from ``[A-Za-z0-9_.-]``, not starting with a digit, ``.`` or ``-``.
    description : str
        One or two sentences for the instruction text.
    parameters : dict
        A JSON schema for the ``parameters`` object; its ``type``, if given, is ``"object"``.

    Raises
    ------
    ValueError
        Quoting a bad name, a schema that is not a JSON object schema, or one that is not
        JSON-serialisable.

    Examples
    --------
    >>> spec = ToolSpec("add", "Add two integers.", {
    ...     "type": "object",
    ...     "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    ...     "required": ["a", "b"]})
    >>> spec.name
    'add'
    >>> ToolSpec("1bad", "", {})
    Traceback (most recent call last):
    ...
    ValueError: ToolSpec.name must match [A-Za-z_][A-Za-z0-9_.-]{0,63}, got '1bad'
    """

    name: str
    description: str
    parameters: dict = field(default_factory=lambda: {"type": "object"})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"ToolSpec.name must match [A-Za-z_][A-Za-z0-9_.-]{{0,63}}, got {self.name!r}"
            )
        if not isinstance(self.description, str):
            raise ValueError(f"ToolSpec.description must be a str, got {self.description!r}")
        if not isinstance(self.parameters, dict):
            raise ValueError(f"ToolSpec.parameters must be a dict, got {self.parameters!r}")
        if self.parameters.get("type", "object") != "object":
            raise ValueError(
                f"ToolSpec.parameters must describe an object, got type "
                f"{self.parameters.get('type')!r} for tool {self.name!r}"
            )
        try:
            json.dumps(self.parameters, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"ToolSpec.parameters of tool {self.name!r} is not JSON: {self.parameters!r}"
            ) from e

    def __hash__(self) -> int:
        return hash((self.name, self.description, json.dumps(self.parameters, sort_keys=True)))
