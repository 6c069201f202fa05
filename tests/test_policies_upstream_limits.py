"""Each upstream rate-limit parser against header values in the formats the APIs send.

Sources of the sample values: OpenAI community thread (x-ratelimit-reset-requests "12ms") and the
rate-limit guide ("1s", "6m0s"); openai-python/anthropic-sdk-python ``_parse_retry_after_header``
(retry-after-ms, then retry-after seconds or HTTP-date); a recorded Anthropic response
(anthropic-ratelimit-*-reset "2025-08-21T12:40:59Z"); GitHub headers dumped in
KnpLabs/php-github-api#1072; Discord's rate-limits topic (Reset 1470173023.123, Reset-After,
Bucket abcd1234, the 429 body with retry_after 64.57); GitLab's user_and_ip_rate_limits.md
(RateLimit-Reset 1609844400, RateLimit-ResetTime "Tue, 05 Jan 2021 11:00:00 GMT");
draft-ietf-httpapi-ratelimit-headers (RateLimit "default";r=50;t=30, RateLimit-Policy
"default";q=100;w=60); Docker Hub ("ratelimit-remaining: 76;w=21600"); RFC 9110 10.2.3
(Retry-After "Fri, 31 Dec 1999 23:59:59 GMT" / "120").
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.policies import PARSER_KINDS, UpstreamSignal, parse_signal, parser_for
from agent.policies.upstream_limits import (
    parse_go_duration,
    parse_http_date,
    parse_retry_after,
    parse_rfc3339,
)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("120ms", 0.12),
        ("12ms", 0.012),
        ("1h2m3.5s", 3723.5),
        ("17.178s", 17.178),
        ("2m59.56s", 179.56),
        ("0s", 0.0),
        ("500us", 0.0005),
        ("250µs", 0.00025),
        ("30", 30.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "1s2", "m1s", "-1s", "1.2.3s"])
def test_go_duration_rejects_junk(text: str) -> None:
    assert parse_go_duration(text) is None


def test_retry_after_seconds_and_http_dates() -> None:
    wall = ts("1999-12-31T23:57:59")
    assert parse_retry_after("120", wall) == 120
    assert parse_retry_after("1.5", wall) == 1.5  # tolerated, as the official SDKs do
    assert parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", wall) == pytest.approx(120)
    assert parse_retry_after("Friday, 31-Dec-99 23:59:59 GMT", wall) == pytest.approx(120)
    assert parse_retry_after("Fri Dec 31 23:59:59 1999", wall) is None  # asctime: no zone
    assert parse_retry_after("Fri, 31 Dec 1999 23:00:00 GMT", wall) == 0  # in the past
    assert parse_retry_after("soon", wall) is None
    assert parse_http_date("Tue, 05 Jan 2021 11:00:00 GMT", ts("2021-01-05T10:59:00")) == 60


def test_rfc3339_instants() -> None:
    wall = ts("2025-08-21T12:40:00")
    assert parse_rfc3339("2025-08-21T12:40:59Z", wall) == pytest.approx(59)
    assert parse_rfc3339("2025-08-21T14:40:59+02:00", wall) == pytest.approx(59)
    assert parse_rfc3339("2025-08-21T12:40:00.250Z", wall) == pytest.approx(0.25)
    assert parse_rfc3339("2025-08-21T12:40:59", wall) is None  # no offset: not RFC 3339


def test_openai_headers() -> None:
    sig = parse_signal(
        200,
        {
            "x-ratelimit-limit-requests": "5000",
            "x-ratelimit-limit-tokens": "160000",
            "x-ratelimit-remaining-requests": "4999",
            "x-ratelimit-remaining-tokens": "159976",
            "x-ratelimit-reset-requests": "12ms",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        kind="openai",
        wall=0,
    )
    assert sig == UpstreamSignal(
        remaining=4999,
        reset_after=pytest.approx(0.012),  # type: ignore[arg-type]
        limit=5000,
        tokens_remaining=159976,
        tokens_reset_after=360,
    )
    assert sig is not None
    assert sig.hold_for == 0


def test_openai_429_prefers_retry_after_ms_then_retry_after() -> None:
    base = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}
    sig = parse_signal(429, {**base, "retry-after-ms": "1500", "retry-after": "2"}, wall=0)
    assert sig is not None
    assert sig.retry_after == 1.5
    assert sig.hold_for == 1.5
    sig = parse_signal(429, {**base, "Retry-After": "20"}, kind="azure_openai", wall=0)
    assert sig is not None
    assert sig.retry_after == 20
    assert parse_signal(200, {"retry-after": "20"}, kind="openai", wall=0) is None


def test_anthropic_headers_and_529() -> None:
    wall = ts("2025-08-21T12:40:58")
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "80000",
        "anthropic-ratelimit-input-tokens-remaining": "80000",
        "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:59Z",
        "anthropic-ratelimit-output-tokens-limit": "16000",
        "anthropic-ratelimit-output-tokens-remaining": "16000",
        "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:41:00Z",
        "anthropic-ratelimit-requests-limit": "1000",
        "anthropic-ratelimit-requests-remaining": "999",
        "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
        "anthropic-ratelimit-tokens-limit": "96000",
        "anthropic-ratelimit-tokens-remaining": "96000",
        "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:59Z",
    }
    sig = parse_signal(200, headers, wall=wall)  # auto-detected
    assert sig is not None
    assert (sig.remaining, sig.limit, sig.tokens_remaining) == (999, 1000, 96000)
    assert sig.reset_after == pytest.approx(1)
    assert sig.tokens_reset_after == pytest.approx(1)
    # without the combined "tokens" family, the tighter of input/output governs
    only_io = {k: v for k, v in headers.items() if "-ratelimit-tokens-" not in k}
    only_io["anthropic-ratelimit-output-tokens-remaining"] = "1000"
    sig = parse_signal(200, only_io, kind="anthropic", wall=wall)
    assert sig is not None
    assert sig.tokens_remaining == 1000
    assert sig.tokens_reset_after == pytest.approx(2)
    sig = parse_signal(429, {**headers, "retry-after": "60"}, wall=wall)
    assert sig is not None
    assert sig.retry_after == 60
    sig = parse_signal(529, {"retry-after": "5"}, kind="anthropic", wall=wall)
    assert sig is not None
    assert sig.retry_after == 5


GITHUB = {
    "X-RateLimit-Limit": "30",
    "X-RateLimit-Remaining": "14",
    "X-RateLimit-Reset": "1655120964",
    "X-RateLimit-Used": "16",
    "X-RateLimit-Resource": "search",
}


def test_github_primary_limit() -> None:
    wall = 1655120964 - 40
    sig = parse_signal(200, GITHUB, wall=wall)
    assert sig is not None
    assert (sig.remaining, sig.limit, sig.bucket, sig.reset_after) == (14, 30, "search", 40)
    assert sig.hold_for == 0
    exhausted = {**GITHUB, "X-RateLimit-Remaining": "0"}
    sig = parse_signal(403, exhausted, body=b'{"message":"API rate limit exceeded"}', wall=wall)
    assert sig is not None
    assert sig.retry_after == 40
    assert sig.hold_for == 40


def test_github_secondary_limits() -> None:
    wall = 1655120964 - 40
    sig = parse_signal(403, {**GITHUB, "Retry-After": "60"}, kind="github", wall=wall)
    assert sig is not None
    assert sig.retry_after == 60
    body = b'{"message":"You have exceeded a secondary rate limit. Please wait a few minutes."}'
    sig = parse_signal(403, GITHUB, body=body, kind="github", wall=wall)
    assert sig is not None
    assert sig.retry_after == 60
    # a plain permission 403 is not a limit
    sig = parse_signal(403, GITHUB, body=b'{"message":"Resource not accessible"}', wall=wall)
    assert sig is not None
    assert sig.retry_after is None
    assert sig.hold_for == 0


def test_discord_bucket_headers() -> None:
    headers = {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1470173023.123",
        "X-RateLimit-Reset-After": "1",
        "X-RateLimit-Bucket": "abcd1234",
    }
    sig = parse_signal(200, headers, wall=1470173022.0)
    assert sig is not None
    assert (sig.remaining, sig.reset_after, sig.bucket, sig.is_global) == (0, 1, "abcd1234", False)
    assert sig.hold_for == 1
    del headers["X-RateLimit-Reset-After"]  # then the epoch reset is used
    sig = parse_signal(200, headers, kind="discord", wall=1470173022.0)
    assert sig is not None
    assert sig.reset_after == pytest.approx(1.123)


def test_discord_429_body_is_more_precise_than_retry_after() -> None:
    headers = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", "Retry-After": "65"}
    body = b'{"message": "You are being rate limited.", "retry_after": 64.57, "global": true}'
    sig = parse_signal(429, headers, body=body, wall=0)
    assert sig is not None
    assert (sig.retry_after, sig.is_global, sig.scope) == (64.57, True, "global")
    shared = {"X-RateLimit-Scope": "shared", "Retry-After": "3", "X-RateLimit-Bucket": "b"}
    sig = parse_signal(429, shared, body=b"not json", kind="discord", wall=0)
    assert sig is not None
    assert (sig.retry_after, sig.is_global, sig.scope) == (3, False, "shared")


def test_retry_after_only_for_slack_and_everyone() -> None:
    assert parse_signal(429, {"Retry-After": "30"}, kind="slack", wall=0) == UpstreamSignal(
        retry_after=30
    )
    wall = ts("2015-10-21T07:27:00")
    sig = parse_signal(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, wall=wall)
    assert sig is not None
    assert sig.retry_after == 60
    assert parse_signal(200, {"content-type": "application/json"}, wall=0) is None
    assert parse_signal(301, {"Retry-After": "30"}, wall=0) is None


def test_ietf_ratelimit_structured_fields() -> None:
    sig = parse_signal(
        200,
        {"RateLimit": '"default";r=50;t=30', "RateLimit-Policy": '"default";q=100;w=60'},
        wall=0,
    )
    assert sig == UpstreamSignal(remaining=50, reset_after=30, limit=100, bucket="default")
    sig = parse_signal(
        429,
        {
            "RateLimit": '"burst";r=0;t=1, "daily";r=900;t=3600',
            "RateLimit-Policy": '"burst";q=10;w=1, "daily";q=1000;w=86400, '
            '"bytes";q=65536;qu="content-bytes";w=60',
            "Retry-After": "1",
        },
        kind="ietf",
        wall=0,
    )
    assert sig is not None
    assert (sig.remaining, sig.reset_after, sig.limit, sig.bucket) == (0, 1, 10, "burst")
    assert sig.retry_after == 1
    sig = parse_signal(
        200,
        {"RateLimit": '"bytes";r=0;t=50', "RateLimit-Policy": '"bytes";q=1000;qu="content-bytes"'},
        wall=0,
    )
    assert sig is None  # byte quotas are not request pacing


def test_legacy_ratelimit_headers_gitlab_and_docker() -> None:
    wall = ts("2021-01-05T10:59:30")
    gitlab = {
        "RateLimit-Limit": "60",
        "RateLimit-Observed": "67",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "1609844400",
        "RateLimit-ResetTime": "Tue, 05 Jan 2021 11:00:00 GMT",
    }
    sig = parse_signal(200, gitlab, kind="gitlab", wall=wall)
    assert sig is not None
    assert (sig.remaining, sig.limit, sig.reset_after) == (0, 60, 30)
    del gitlab["RateLimit-Reset"]
    sig = parse_signal(429, {**gitlab, "Retry-After": "30"}, wall=wall)
    assert sig is not None
    assert sig.reset_after == 30
    assert sig.retry_after == 30
    assert parse_signal(200, {"RateLimit-Remaining": "3", "RateLimit-Reset": "20"}, wall=wall) == (
        UpstreamSignal(remaining=3, reset_after=20)  # the drafts' delta-seconds
    )
    docker = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"}
    sig = parse_signal(200, docker, kind="docker", wall=wall)
    assert sig is not None
    assert (sig.remaining, sig.limit, sig.reset_after) == (76, 100, None)


def test_x_ratelimit_generic_epoch_or_delta() -> None:
    wall = 1_700_000_000.0
    sig = parse_signal(
        200,
        {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1700000042",
        },
        kind="vercel",
        wall=wall,
    )
    assert sig is not None
    assert sig.reset_after == 42
    assert sig.hold_for == 42
    sig = parse_signal(200, {"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "3"}, wall=wall)
    assert sig is not None
    assert (sig.remaining, sig.reset_after) == (7, 3)


def test_gemini_retry_info_in_the_error_body() -> None:
    body = b"""{"error": {"code": 429, "message": "Resource has been exhausted",
      "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "23s"}]}}"""
    assert parse_signal(429, {}, body=body, wall=0) == UpstreamSignal(retry_after=23)
    assert parse_signal(429, {}, body=body, kind="gemini", wall=0) == UpstreamSignal(retry_after=23)
    assert parse_signal(429, {}, body=b"{}", kind="google", wall=0) is None


def test_parser_for_knows_the_kinds_and_rejects_others() -> None:
    assert {"auto", "openai", "anthropic", "github", "discord", "slack", "ietf"} <= PARSER_KINDS
    assert parser_for("OpenAI") is parser_for("openai")
    with pytest.raises(ValueError, match=r"unknown rate-limit header kind 'nope'.*openai"):
        parser_for("nope")


def test_junk_values_are_ignored_not_raised() -> None:
    sig = parse_signal(
        429,
        {"x-ratelimit-remaining-requests": "lots", "x-ratelimit-reset-requests": "later"},
        wall=0,
    )
    assert sig is None or (sig.remaining is None and sig.reset_after is None)
    assert parse_signal(429, {"retry-after": "-5"}, wall=0) is None
    assert parse_signal(429, {"retry-after": "nan"}, wall=0) is None
