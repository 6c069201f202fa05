"""Turn an upstream's own rate-limit signals (status, headers, a small JSON body) into one shape.

Each family of APIs gets a parser; all return an ``UpstreamSignal`` (or None when the response
says nothing about limits):

=================  =============================================================================
kind               what it reads
=================  =============================================================================
``openai``         ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; resets are Go
                   durations (``1s``, ``6m0s``, ``120ms``, ``1h2m3.5s``) until the bucket is full;
                   ``retry-after-ms`` then ``retry-after`` (as the official SDKs read them).
                   Azure OpenAI sends the same names (``azure_openai`` is an alias).
``anthropic``      ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
                   remaining,reset}``; resets are RFC 3339 instants; ``retry-after`` seconds on
                   429 and 529 (overloaded).
``github``         ``x-ratelimit-{limit,remaining,used,reset,resource}``; reset is epoch seconds;
                   the resource (``core``, ``search``...) is the bucket. Primary limit: remaining 0
                   -> wait for reset. Secondary limits: 403/429 with ``retry-after``; else
                   remaining 0 -> reset; else a "secondary rate limit" body -> 60 s (GitHub: wait
                   at least a minute).
``discord``        ``X-RateLimit-{Limit,Remaining,Reset,Reset-After,Bucket,Global,Scope}``
                   (Reset-After: float seconds) and the 429 body ``{"retry_after": 64.57,
                   "global": false}``, which is more precise than the integer ``Retry-After``.
``ietf``           ``RateLimit: "default";r=50;t=30`` with ``RateLimit-Policy:
                   "default";q=100;w=60`` (Structured Fields, draft-ietf-httpapi-ratelimit-headers
                   -08..-11), and the older ``RateLimit-Limit/-Remaining/-Reset`` (GitLab sends an
                   epoch reset and ``RateLimit-ResetTime`` as an HTTP-date; Docker Hub sends
                   ``ratelimit-remaining: 76;w=21600``). ``gitlab``/``docker`` are aliases.
``x_ratelimit``    the de-facto ``X-RateLimit-Limit/-Remaining/-Reset`` (Vercel and many others);
                   a reset above 10^9 is an epoch, otherwise delta seconds.
``google``         Gemini / Google APIs: 429 ``RESOURCE_EXHAUSTED`` whose JSON error carries a
                   ``google.rpc.RetryInfo`` ``retryDelay`` ("23s").
``retry_after``    only ``Retry-After`` (Slack and everyone else): delta seconds or an HTTP-date.
``auto``           picks one of the above by which headers are present (the default).
=================  =============================================================================

Parsers take headers with lower-case names (``lower_headers`` makes such a mapping; httpx's
``Headers`` is already case-insensitive) and the wall clock, for epoch and date resets.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

__all__ = [
    "PARSER_KINDS",
    "SignalParser",
    "UpstreamSignal",
    "lower_headers",
    "parse_anthropic",
    "parse_auto",
    "parse_discord",
    "parse_github",
    "parse_go_duration",
    "parse_google",
    "parse_http_date",
    "parse_ietf",
    "parse_openai",
    "parse_retry_after",
    "parse_retry_after_only",
    "parse_rfc3339",
    "parse_signal",
    "parse_x_ratelimit",
    "parser_for",
]

# Statuses on which a Retry-After means "hold calls": the rest are redirects or informational.
_HOLD_STATUSES = frozenset({429, 503, 529})
_EPOCH_THRESHOLD = 1e9  # a "reset" bigger than this is a Unix time, not a delta (2001-09-09)


@dataclass(frozen=True, slots=True)
class UpstreamSignal:
    """What the upstream said about its limits, normalised to seconds from now."""

    remaining: float | None = None  # requests left in the current window
    reset_after: float | None = None  # seconds until that window is replenished
    limit: float | None = None  # the window's size in requests
    tokens_remaining: float | None = None  # LLM tokens left
    tokens_reset_after: float | None = None
    retry_after: float | None = None  # seconds the upstream asked us to wait before any call
    bucket: str = ""  # Discord bucket id, GitHub resource, IETF policy name
    scope: str = ""  # Discord scope ("user" | "global" | "shared"), ...
    is_global: bool = False  # applies to every route of the integration

    @property
    def hold_for(self) -> float:
        """Seconds no call should start for (Retry-After, or the reset of an exhausted window)."""
        hold = self.retry_after or 0.0
        if self.remaining is not None and self.remaining <= 0 and self.reset_after:
            hold = max(hold, self.reset_after)
        return hold


SignalParser = Callable[[int, Mapping[str, str], bytes | None, float], UpstreamSignal | None]
"""``parser(status, lower_case_headers, body_or_None, wall_now) -> UpstreamSignal | None``"""


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with lower-case names, which every parser expects."""
    return {k.lower(): v for k, v in headers.items()}


# ---------------------------------------------------------------------------------------------
# Value formats


def _num(value: str | None) -> float | None:
    """A non-negative number; Docker's ``76;w=21600`` reads as 76; junk reads as None."""
    if value is None:
        return None
    try:
        n = float(value)  # the common case, and the fast one
    except ValueError:
        try:
            n = float(value.split(";", 1)[0].split(",", 1)[0])
        except ValueError:
            return None
    return n if math.isfinite(n) and n >= 0 else None


_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(value: str | None) -> float | None:
    """Seconds in a Go ``time.Duration`` string (``6m0s``, ``120ms``, ``1h2m3.5s``); a bare
    number is taken as seconds; None when unparseable."""
    if value is None:
        return None
    return _go_duration(value)


@lru_cache(maxsize=512)  # a handful of distinct values repeat on every response
def _go_duration(value: str) -> float | None:
    text = value.strip()
    if not text:
        return None
    bare = _num(text)
    if bare is not None and text.replace(".", "", 1).isdigit():
        return bare
    total = 0.0
    pos = 0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def parse_http_date(value: str | None, wall: float) -> float | None:
    """Seconds from ``wall`` until an HTTP-date (IMF-fixdate or the obsolete forms); >= 0."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are always GMT
        return None
    return max(0.0, when.timestamp() - wall)


def parse_rfc3339(value: str | None, wall: float) -> float | None:
    """Seconds from ``wall`` until an RFC 3339 instant (``2025-08-21T12:40:59Z``); >= 0."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - wall)


def parse_retry_after(value: str | None, wall: float) -> float | None:
    """``Retry-After``: delta-seconds (decimals tolerated, as the OpenAI/Anthropic SDKs do) or an
    HTTP-date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    seconds = _num(value)
    if seconds is not None and ";" not in value:
        return seconds
    return parse_http_date(value, wall)


def _retry_after(h: Mapping[str, str], wall: float) -> float | None:
    ms = _num(h.get("retry-after-ms"))  # non-standard; OpenAI/Azure send it, the SDKs prefer it
    if ms is not None:
        return ms / 1000.0
    return parse_retry_after(h.get("retry-after"), wall)


def _json(body: bytes | None) -> object:
    if not body or len(body) > 64 * 1024:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Parsers, one per family


def parse_retry_after_only(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """Slack and everyone: ``Retry-After`` on a 429/503."""
    if status not in _HOLD_STATUSES:
        return None
    ra = _retry_after(h, wall)
    return UpstreamSignal(retry_after=ra) if ra is not None else None


def parse_openai(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """OpenAI and Azure OpenAI ``x-ratelimit-*`` (Go-duration resets) and retry-after(-ms)."""
    rem = _num(h.get("x-ratelimit-remaining-requests"))
    trem = _num(h.get("x-ratelimit-remaining-tokens"))
    ra = _retry_after(h, wall) if status in _HOLD_STATUSES else None
    if rem is None and trem is None and ra is None:
        return None
    return UpstreamSignal(
        remaining=rem,
        reset_after=parse_go_duration(h.get("x-ratelimit-reset-requests")),
        limit=_num(h.get("x-ratelimit-limit-requests")),
        tokens_remaining=trem,
        tokens_reset_after=parse_go_duration(h.get("x-ratelimit-reset-tokens")),
        retry_after=ra,
    )


def parse_anthropic(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """Anthropic ``anthropic-ratelimit-*`` (RFC 3339 resets) and ``retry-after`` on 429/529."""
    rem = _num(h.get("anthropic-ratelimit-requests-remaining"))
    reset = parse_rfc3339(h.get("anthropic-ratelimit-requests-reset"), wall)
    # "tokens" is the most restrictive limit in effect; else the tighter of input/output.
    trem = _num(h.get("anthropic-ratelimit-tokens-remaining"))
    treset = parse_rfc3339(h.get("anthropic-ratelimit-tokens-reset"), wall)
    if trem is None:
        for kind in ("input-tokens", "output-tokens"):
            r = _num(h.get(f"anthropic-ratelimit-{kind}-remaining"))
            if r is not None and (trem is None or r < trem):
                trem = r
                treset = parse_rfc3339(h.get(f"anthropic-ratelimit-{kind}-reset"), wall)
    ra = _retry_after(h, wall) if status in _HOLD_STATUSES else None
    if rem is None and trem is None and ra is None:
        return None
    return UpstreamSignal(
        remaining=rem,
        reset_after=reset,
        limit=_num(h.get("anthropic-ratelimit-requests-limit")),
        tokens_remaining=trem,
        tokens_reset_after=treset,
        retry_after=ra,
    )


_GITHUB_SECONDARY_WAIT = 60.0


def parse_github(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """GitHub primary (``x-ratelimit-*``, epoch reset, per resource) and secondary limits."""
    rem = _num(h.get("x-ratelimit-remaining"))
    reset_at = _num(h.get("x-ratelimit-reset"))
    reset = max(0.0, reset_at - wall) if reset_at is not None else None
    ra: float | None = None
    if status in (403, 429):
        ra = _retry_after(h, wall)
        if ra is None and rem is not None and rem <= 0:
            ra = reset
        if ra is None and body and b"secondary rate limit" in body.lower():
            ra = _GITHUB_SECONDARY_WAIT
    elif status == 503:
        ra = _retry_after(h, wall)
    if rem is None and ra is None:
        return None
    return UpstreamSignal(
        remaining=rem,
        reset_after=reset,
        limit=_num(h.get("x-ratelimit-limit")),
        retry_after=ra,
        bucket=h.get("x-ratelimit-resource", ""),
    )


def parse_discord(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """Discord ``X-RateLimit-*`` buckets, global and shared limits, and the 429 JSON body."""
    rem = _num(h.get("x-ratelimit-remaining"))
    reset = _num(h.get("x-ratelimit-reset-after"))
    if reset is None:
        reset_at = _num(h.get("x-ratelimit-reset"))
        reset = max(0.0, reset_at - wall) if reset_at is not None else None
    scope = h.get("x-ratelimit-scope", "").strip().lower()
    is_global = h.get("x-ratelimit-global", "").strip().lower() == "true" or scope == "global"
    ra: float | None = None
    if status == 429:
        data = _json(body)
        if isinstance(data, dict):
            value = data.get("retry_after")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                ra = float(value)
            if data.get("global") is True:
                is_global = True
        if ra is None:
            ra = _retry_after(h, wall)
    elif status in _HOLD_STATUSES:
        ra = _retry_after(h, wall)
    if rem is None and ra is None:
        return None
    return UpstreamSignal(
        remaining=rem,
        reset_after=reset,
        limit=_num(h.get("x-ratelimit-limit")),
        retry_after=ra,
        bucket=h.get("x-ratelimit-bucket", ""),
        scope=scope,
        is_global=is_global,
    )


def parse_google(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """Google APIs (Gemini): ``google.rpc.RetryInfo.retryDelay`` in a 429 JSON error."""
    ra = _retry_after(h, wall) if status in _HOLD_STATUSES else None
    if status == 429 and ra is None:
        data = _json(body)
        error = data.get("error") if isinstance(data, dict) else None
        details = error.get("details") if isinstance(error, dict) else None
        for detail in details if isinstance(details, list) else ():
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith(
                "google.rpc.RetryInfo"
            ):
                delay = detail.get("retryDelay")  # protobuf Duration JSON: "23s", "0.500s"
                if isinstance(delay, str) and delay.endswith("s"):
                    ra = _num(delay[:-1])
    return UpstreamSignal(retry_after=ra) if ra is not None else None


# Structured Fields (RFC 9651) lists, just enough for RateLimit / RateLimit-Policy members:
# an item (string or token) followed by ;key=value parameters (integer, decimal, string, token).
_SF_MEMBER = re.compile(
    r'\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z*][\w:/!#$%&\'*+.^`|~-]*))'
    r'((?:\s*;\s*[a-z*][a-z0-9_.*-]*(?:=(?:"(?:[^"\\]|\\.)*"|[^;,\s]+))?)*)\s*(?:,|$)'
)
_SF_PARAM = re.compile(r'\s*;\s*([a-z*][a-z0-9_.*-]*)(?:=("(?:[^"\\]|\\.)*"|[^;,\s]+))?')


def _sf_list(value: str) -> list[tuple[str, dict[str, str]]]:
    members: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(value):
        m = _SF_MEMBER.match(value, pos)
        if m is None or m.end() == pos:
            break
        name = m.group(1) if m.group(1) is not None else (m.group(2) or "")
        params = {
            p.group(1): (p.group(2) or "?1").strip('"') for p in _SF_PARAM.finditer(m.group(3))
        }
        members.append((name, params))
        pos = m.end()
    return members


def _legacy(
    h: Mapping[str, str], wall: float, prefix: str
) -> tuple[float | None, float | None, float | None]:
    """``{prefix}limit/remaining/reset`` with the epoch-or-delta heuristic for reset."""
    rem = _num(h.get(f"{prefix}remaining"))
    reset_value = _num(h.get(f"{prefix}reset"))
    reset: float | None = None
    if reset_value is not None:
        reset = max(0.0, reset_value - wall) if reset_value > _EPOCH_THRESHOLD else reset_value
    elif prefix == "ratelimit-":
        reset = parse_http_date(h.get("ratelimit-resettime"), wall)  # GitLab
    return rem, reset, _num(h.get(f"{prefix}limit"))


def parse_ietf(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """IETF ``RateLimit``/``RateLimit-Policy`` (Structured Fields) or the older ``RateLimit-*``."""
    rem: float | None = None
    reset: float | None = None
    limit: float | None = None
    bucket = ""
    field = h.get("ratelimit")
    if field:
        policies = {name: p for name, p in _sf_list(h.get("ratelimit-policy", ""))}
        for name, params in _sf_list(field):
            policy = policies.get(name, {})
            if policy.get("qu", "requests") != "requests":
                continue  # content-bytes / concurrent-requests quotas are not ours to pace
            r = _num(params.get("r"))
            if r is not None and (rem is None or r < rem):
                rem, reset, bucket = r, _num(params.get("t")), name
                limit = _num(policy.get("q"))
    else:
        rem, reset, limit = _legacy(h, wall, "ratelimit-")
    ra = _retry_after(h, wall) if status in _HOLD_STATUSES else None
    if rem is None and ra is None:
        return None
    return UpstreamSignal(
        remaining=rem, reset_after=reset, limit=limit, retry_after=ra, bucket=bucket
    )


def parse_x_ratelimit(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """The de-facto ``X-RateLimit-Limit/-Remaining/-Reset`` (epoch or delta reset)."""
    rem, reset, limit = _legacy(h, wall, "x-ratelimit-")
    ra = _retry_after(h, wall) if status in _HOLD_STATUSES else None
    if rem is None and ra is None:
        return None
    return UpstreamSignal(remaining=rem, reset_after=reset, limit=limit, retry_after=ra)


def parse_auto(
    status: int, h: Mapping[str, str], body: bytes | None, wall: float
) -> UpstreamSignal | None:
    """Pick the family by which headers are present (most specific names first)."""
    if (
        "anthropic-ratelimit-requests-remaining" in h
        or "anthropic-ratelimit-tokens-remaining" in h
        or "anthropic-ratelimit-input-tokens-remaining" in h
    ):
        return parse_anthropic(status, h, body, wall)
    if "x-ratelimit-remaining-requests" in h or "x-ratelimit-remaining-tokens" in h:
        return parse_openai(status, h, body, wall)
    if "x-ratelimit-bucket" in h or "x-ratelimit-reset-after" in h or "x-ratelimit-global" in h:
        return parse_discord(status, h, body, wall)
    if "x-ratelimit-resource" in h:
        return parse_github(status, h, body, wall)
    if "ratelimit" in h or "ratelimit-remaining" in h:
        return parse_ietf(status, h, body, wall)
    if "x-ratelimit-remaining" in h:
        return parse_x_ratelimit(status, h, body, wall)
    if status == 429 and body and b"RetryInfo" in body:
        return parse_google(status, h, body, wall)
    return parse_retry_after_only(status, h, body, wall)


_PARSERS: dict[str, SignalParser] = {
    "auto": parse_auto,
    "openai": parse_openai,
    "azure_openai": parse_openai,
    "anthropic": parse_anthropic,
    "github": parse_github,
    "discord": parse_discord,
    "ietf": parse_ietf,
    "gitlab": parse_ietf,
    "docker": parse_ietf,
    "x_ratelimit": parse_x_ratelimit,
    "vercel": parse_x_ratelimit,
    "google": parse_google,
    "gemini": parse_google,
    "slack": parse_retry_after_only,
    "retry_after": parse_retry_after_only,
}
PARSER_KINDS = frozenset(_PARSERS)


def parser_for(kind: str) -> SignalParser:
    """The parser for a preset's telemetry kind; ValueError names the known kinds."""
    try:
        return _PARSERS[kind.lower()]
    except KeyError:
        known = ", ".join(sorted(_PARSERS))
        raise ValueError(f"unknown rate-limit header kind {kind!r}; use one of: {known}") from None


def parse_signal(
    status: int,
    headers: Mapping[str, str],
    body: bytes | None = None,
    *,
    kind: str = "auto",
    wall: float,
) -> UpstreamSignal | None:
    """Convenience: lower-case the header names and run the ``kind`` parser."""
    return parser_for(kind)(status, lower_headers(headers), body, wall)
