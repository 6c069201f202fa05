"""``Secret``: a configuration string that must never be shown.

Tokens, API keys, passwords and webhook URLs are held in a ``Secret``. Its ``repr``/``str`` are
``***``, pydantic serialises it as ``***``, and validation errors never include it, so a secret can
only leave the process through an explicit ``get()`` at the place that injects it into a request.

A secret also remembers where it came from (``source``): ``"literal"``, ``"env:VAR"``,
``"file:/abs/path"`` or ``"template:<text>"`` (a string mixing text and references, kept with
its ``${...}`` references unresolved). Reloading file-backed secrets re-reads from that source.
"""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

__all__ = ["MASK", "Secret"]

#: What every secret looks like when shown.
MASK = "***"


class Secret:
    """A secret string: ``get()`` returns it; everything else shows ``***``."""

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, *, source: str = "literal") -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value
        self._source = source

    def get(self) -> str:
        """The secret value; call it only where the value is sent upstream or compared."""
        return self._value

    @property
    def source(self) -> str:
        """Where the value came from: ``literal``, ``env:VAR``, ``file:/path``, ``template:...``."""
        return self._source

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "_source"):  # both slots are set in __init__: frozen from then on
            raise AttributeError("Secret is immutable")
        object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._value, self._source))

    # -- pydantic integration -------------------------------------------------------------

    @classmethod
    def _validate(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PydanticCustomError("kilo_secret_type", "must be a string (quote it in YAML)")
        text = str(value)
        if not text:
            raise PydanticCustomError("kilo_secret_empty", "is empty; a secret needs a value")
        source = getattr(value, "source", "literal")
        return cls(text, source=source if isinstance(source, str) else "literal")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda _secret: MASK, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "password", "writeOnly": True}


def _rebuild(value: str, source: str) -> Secret:
    return Secret(value, source=source)
