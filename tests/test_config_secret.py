"""``Secret``: the value is reachable only through ``get()``; everything else shows ``***``."""

from __future__ import annotations

import json
import pickle

import pytest
from pydantic import BaseModel, ValidationError

from agent.config import BearerAuth, Secret

VALUE = "sk-live-0123456789abcdef"


class _Holder(BaseModel):
    secret: Secret


def test_value_only_through_get() -> None:
    secret = Secret(VALUE)
    assert secret.get() == VALUE
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    assert f"{secret!r}" == "Secret('***')"
    assert "%s" % secret == "***"  # noqa: UP031 - the old formatting path too
    assert secret.source == "literal"


def test_plain_string_validates_into_a_secret_and_dumps_masked() -> None:
    holder = _Holder.model_validate({"secret": VALUE})
    assert isinstance(holder.secret, Secret)
    assert holder.secret.get() == VALUE
    assert VALUE not in repr(holder)
    assert holder.model_dump() == {"secret": "***"}
    assert json.loads(holder.model_dump_json()) == {"secret": "***"}


def test_json_schema_is_a_write_only_string() -> None:
    schema = _Holder.model_json_schema()["properties"]["secret"]
    assert schema["type"] == "string"
    assert schema["writeOnly"] is True


def test_numbers_are_accepted_as_text_but_empty_is_not() -> None:
    assert _Holder.model_validate({"secret": 12345}).secret.get() == "12345"
    with pytest.raises(ValidationError, match="is empty"):
        _Holder.model_validate({"secret": ""})
    with pytest.raises(ValidationError, match="must be a string"):
        _Holder.model_validate({"secret": ["a"]})


def test_validation_errors_do_not_echo_inputs() -> None:
    # A failing model next to a secret must not print the secret in pydantic's own text.
    with pytest.raises(ValidationError) as info:
        BearerAuth.model_validate({"type": "bearer", "token": VALUE, "extra": VALUE})
    assert VALUE not in str(info.value)
    assert VALUE not in repr(info.value)


def test_equality_hash_and_immutability() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret("other")
    assert Secret(VALUE) != VALUE  # a secret is not a string
    assert len({Secret(VALUE), Secret(VALUE)}) == 1
    secret = Secret(VALUE)
    with pytest.raises(AttributeError):
        secret._value = "changed"  # type: ignore[misc]
    assert secret.get() == VALUE


def test_pickle_keeps_value_and_source() -> None:
    copy = pickle.loads(pickle.dumps(Secret(VALUE, source="env:KEY")))
    assert copy.get() == VALUE
    assert copy.source == "env:KEY"


def test_only_strings() -> None:
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]
