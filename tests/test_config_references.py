"""``${VAR}``, ``${env:VAR}``, ``${file:/path}`` and ``$${`` in configuration strings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config import Secret, load_config, parse_config
from agent.errors import ConfigError

TOKEN = "tok-9f8e7d6c5b4a"


def _bearer(token: str, **extra: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "base_url": "https://api.example.com/v1",
        "auth": {"type": "bearer", "token": token},
    }
    entry.update(extra)
    return {"integrations": {"svc": entry}}


def _token(config_data: dict[str, object], env: dict[str, str]) -> Secret:
    auth = parse_config(config_data, env).integrations["svc"].auth
    token = getattr(auth, "token", None)
    assert isinstance(token, Secret)
    return token


@pytest.mark.parametrize("form", ["${API_KEY}", "${env:API_KEY}", "${ env:API_KEY }"])
def test_environment_references(form: str) -> None:
    token = _token(_bearer(form), {"API_KEY": TOKEN})
    assert token.get() == TOKEN
    assert token.source == "env:API_KEY"


def test_env_parameter_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILO_TEST_KEY", "from-os-environ")
    assert _token(_bearer("${KILO_TEST_KEY}"), {"KILO_TEST_KEY": TOKEN}).get() == TOKEN
    with pytest.raises(ConfigError, match="KILO_TEST_KEY is not set"):
        parse_config(_bearer("${KILO_TEST_KEY}"), {})
    config = parse_config(_bearer("${KILO_TEST_KEY}"))  # env=None: os.environ
    assert config.integrations["svc"].auth.token.get() == "from-os-environ"  # type: ignore[union-attr]
    assert os.environ["KILO_TEST_KEY"] == "from-os-environ"


def test_file_reference_is_read_and_stripped(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(f"  {TOKEN}\n")
    token = _token(_bearer(f"${{file:{secret_file}}}"), {})
    assert token.get() == TOKEN
    assert token.source == f"file:{secret_file}"


def test_relative_file_reference_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text(TOKEN)
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(
        "integrations:\n"
        "  svc:\n"
        "    base_url: https://api.example.com\n"
        "    auth: {type: bearer, token: '${file:secrets/token}'}\n"
    )
    token = load_config(config_file, env={}).integrations["svc"].auth.token  # type: ignore[union-attr]
    assert token.get() == TOKEN
    assert token.source == f"file:{tmp_path / 'secrets' / 'token'}"


def test_embedded_references_and_escape() -> None:
    data = _bearer(
        "${PREFIX}-${env:SUFFIX}",
        headers={"X-Note": "costs $${HOME} and ${PREFIX}", "X-Literal": "$$ and $5"},
    )
    config = parse_config(data, {"PREFIX": "ab", "SUFFIX": "cd"})
    integration = config.integrations["svc"]
    token = integration.auth.token  # type: ignore[union-attr]
    assert token.get() == "ab-cd"
    assert token.source == "template:${PREFIX}-${env:SUFFIX}"  # re-resolvable, holds no secret
    assert integration.headers == {"X-Note": "costs ${HOME} and ab", "X-Literal": "$$ and $5"}


def test_references_work_in_any_string_value() -> None:
    data = {
        "listen": {"grpc": "${HOST}:${PORT}"},
        "integrations": {"svc": {"base_url": "https://${API_HOST}/v1", "allow_paths": ["/${P}"]}},
    }
    env = {"HOST": "0.0.0.0", "PORT": "6000", "API_HOST": "api.example.com", "P": "models"}
    config = parse_config(data, env)
    assert config.listen.grpc == "0.0.0.0:6000"
    assert config.integrations["svc"].base_url == "https://api.example.com/v1"
    assert config.integrations["svc"].allow_paths == ("/models",)


def _problems(data: dict[str, object], env: dict[str, str]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env)
    return {problem.path: problem.message for problem in info.value.problems}


def test_missing_variable_is_one_problem_at_its_key() -> None:
    problems = _problems(_bearer("${OPENAI_API_KEY}"), {})
    assert problems == {
        "integrations.svc.auth.token": "environment variable OPENAI_API_KEY is not set; "
        "export it or write the value in the file (or use ${file:/path})"
    }


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: str(d / "missing"), "does not exist"),
        (lambda d: str(d), "is a directory"),
        (lambda d: "", "needs a path"),
    ],
)
def test_unreadable_files(tmp_path: Path, make: object, expected: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    problems = _problems(_bearer(f"${{file:{path}}}"), {})
    assert list(problems) == ["integrations.svc.auth.token"]
    assert expected in problems["integrations.svc.auth.token"]


def test_file_that_is_not_text(tmp_path: Path) -> None:
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    problems = _problems(_bearer(f"${{file:{binary}}}"), {})
    assert "is not UTF-8 text" in problems["integrations.svc.auth.token"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${vault:secret/x}", "unknown reference '${vault:...}'"),
        ("abc${UNCLOSED", "unterminated '${'"),
        ("${not-a-name}", "is not a valid environment variable reference"),
    ],
)
def test_malformed_references(value: str, expected: str) -> None:
    problems = _problems(_bearer(value), {})
    assert expected in problems["integrations.svc.auth.token"]


def test_resolved_values_never_appear_in_problems(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("not a url at all " + TOKEN)
    data = {
        "integrations": {
            "svc": {
                "base_url": f"${{file:{tmp_path / 'url'}}}",
                "timeout": "${TIMEOUT}",
                "auth": {"type": "bearer", "token": "${TOKEN}"},
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data, {"TIMEOUT": f"forever-{TOKEN}", "TOKEN": TOKEN})
    paths = {problem.path for problem in info.value.problems}
    assert paths == {"integrations.svc.base_url", "integrations.svc.timeout"}
    assert TOKEN not in str(info.value)
