"""Traces, metrics and the audit log of the agent (OpenTelemetry), fed by events.

``Telemetry`` is the one object the app builds; ``agent.telemetry.setup`` is the only module
that touches the OpenTelemetry SDK. See ``setup.py`` for the ``OTEL_*`` settings.
"""

from agent.telemetry.audit import AuditLog, audit_record
from agent.telemetry.core import Telemetry
from agent.telemetry.redact import REDACTED, is_webhook_url, redact_url
from agent.telemetry.setup import DEFAULT_SERVICE_NAME, TelemetrySettings

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "REDACTED",
    "AuditLog",
    "Telemetry",
    "TelemetrySettings",
    "audit_record",
    "is_webhook_url",
    "redact_url",
]
