"""Telemetry pieces on their own: URL redaction, OTEL_* settings, resource, audit log lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.events import CallFinished, EventHub
from agent.telemetry import REDACTED, AuditLog, TelemetrySettings, audit_record, redact_url
from agent.telemetry.genai import operation_of
from agent.telemetry.setup import _resource, build_providers

# -- url.full -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://api.openai.com/v1/chat/completions",
            "https://api.openai.com/v1/chat/completions",
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?key=AIzaXX&alt=sse",
            "https://generativelanguage.googleapis.com/v1beta/models/g:generateContent"
            f"?key={REDACTED}&alt=sse",
        ),
        (
            "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026&sp=r&sig=abc%2Bdef",
            f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026&sp=r&sig={REDACTED}",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1"
            "&X-Amz-Signature=ff&X-Amz-Security-Token=tt&x-id=GetObject",
            f"https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential={REDACTED}"
            f"&X-Amz-Signature={REDACTED}&X-Amz-Security-Token={REDACTED}&x-id=GetObject",
        ),
        (
            "https://x.example/cb?access_token=a&token=b&refresh_token=c&client_secret=d&page=2",
            f"https://x.example/cb?access_token={REDACTED}&token={REDACTED}"
            f"&refresh_token={REDACTED}&client_secret={REDACTED}&page=2",
        ),
        ("https://user:pw@host.example:8443/p?q=1#frag", "https://host.example:8443/p?q=1"),
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com"),
        ("https://discord.com/api/webhooks/123/tok?wait=true", "https://discord.com"),
        (
            "https://discord.com/api/v10/channels/1/messages",
            "https://discord.com/api/v10/channels/1/messages",
        ),
        (
            "https://contoso.webhook.office.com/webhookb2/abc/IncomingWebhook/d/e",
            "https://contoso.webhook.office.com",
        ),
        (
            "https://prod-01.westus.logic.azure.com:443/workflows/1/triggers?sig=s",
            "https://prod-01.westus.logic.azure.com:443",
        ),
        ("not a url", REDACTED),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_webhook_flag_keeps_only_the_origin() -> None:
    assert redact_url("https://hooks.example.com/secret/path?x=1", webhook=True) == (
        "https://hooks.example.com"
    )


# -- settings -------------------------------------------------------------------------------------


def test_settings_default_records_but_exports_nothing() -> None:
    settings = TelemetrySettings.from_env({})
    assert not settings.disabled
    assert settings.traces_exporters == ()
    assert settings.metrics_exporters == ()


def test_settings_endpoint_turns_otlp_on_with_protocols() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        "OTEL_TRACES_EXPORTER": "none",
    }
    settings = TelemetrySettings.from_env(env)
    assert settings.traces_exporters == ()
    assert settings.metrics_exporters == ("otlp",)
    assert settings.traces_protocol == "http/protobuf"
    assert settings.metrics_protocol == "grpc"
    assert TelemetrySettings.from_env({"OTEL_SDK_DISABLED": "TRUE"}).disabled
    assert TelemetrySettings.from_env({"OTEL_TRACES_EXPORTER": "otlp"}).traces_exporters == (
        "otlp",
    )


def test_resource_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
    resource = _resource("1.2.3")
    assert resource.attributes["service.name"] == "kilo-agent"
    assert resource.attributes["service.version"] == "1.2.3"
    assert resource.attributes["deployment.environment.name"] == "test"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert _resource("1").attributes["service.name"] == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-name")
    assert _resource("1").attributes["service.name"] == "from-name"


def test_sampler_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    providers = build_providers(TelemetrySettings.from_env({}), version="0")
    try:
        assert "TraceIdRatio" in type(providers.tracer_provider.sampler).__name__
        assert providers.tracer_provider.sampler.rate == 0.25  # type: ignore[attr-defined]
    finally:
        providers.shutdown(1.0)


def test_semconv_opt_in_is_set_unless_the_operator_did() -> None:
    # Set by the first Telemetry of the process (the instrumentation reads it once).
    from agent.config.models import TelemetryConfig
    from agent.telemetry import Telemetry

    telemetry = Telemetry(TelemetryConfig(audit_log="off"), EventHub(), env={})
    telemetry.close()
    assert os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] in ("http", "http/dup")


# -- genai operation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("/chat/completions", ("chat", "")),
        ("/v1/messages", ("chat", "")),
        ("/responses", ("chat", "")),
        ("/embeddings", ("embeddings", "")),
        ("/completions", ("text_completion", "")),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            ("generate_content", "gemini-2.0-flash"),
        ),
        (
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            ("generate_content", "gemini-2.0-flash"),
        ),
        ("/v1beta/models/text-embedding-004:embedContent", ("embeddings", "text-embedding-004")),
        ("/models", ("", "")),
    ],
)
def test_operation_of(endpoint: str, expected: tuple[str, str]) -> None:
    assert operation_of(endpoint) == expected


# -- audit log ------------------------------------------------------------------------------------


def _finished(**overrides: object) -> CallFinished:
    fields: dict[str, object] = {
        "integration": "openai",
        "caller": "checkout",
        "method": "POST",
        "endpoint": "/chat/completions",
        "status": 200,
        "outcome": "ok",
        "duration": 0.1234,
        "attempts": 2,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }
    fields.update(overrides)
    return CallFinished(**fields)  # type: ignore[arg-type]


def test_audit_record_fields() -> None:
    record = audit_record(_finished(endpoint="/v1/files?token=abc"), finished_at=1_700_000_000.5)
    assert record == {
        "timestamp": "2023-11-14T22:13:20.376Z",
        "service": "openai",
        "endpoint": "/v1/files",
        "method": "POST",
        "statusCode": 200,
        "responseTime": 123.4,
        "caller": "checkout",
        "attempts": 2,
        "outcome": "ok",
        "traceId": "0af7651916cd43dd8448eb211c80319c",
    }


def test_audit_log_to_a_file_flushes_on_close(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    hub = EventHub()
    audit.subscribe(hub)
    audit.start()
    for i in range(50):
        hub.publish(_finished(attempts=i))
    audit.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["attempts"] for line in lines] == list(range(50))
    assert audit.dropped == 0


def test_audit_log_drops_rather_than_blocks_when_full() -> None:
    audit = AuditLog("stdout", max_queue=3)  # writer not started: nothing drains the queue
    hub = EventHub()
    audit.subscribe(hub)
    for _ in range(10):
        hub.publish(_finished())
    assert audit.dropped == 7


def test_audit_log_off_subscribes_nothing() -> None:
    hub = EventHub()
    AuditLog("off").subscribe(hub)
    assert not hub.has_subscribers(CallFinished)


def test_audit_log_unwritable_path_is_reported_once_and_disabled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(str(tmp_path / "missing" / "audit.jsonl"))
    audit.start()
    audit.close()
    assert audit.destination == "off"
    assert "cannot open the audit log" in caplog.text
