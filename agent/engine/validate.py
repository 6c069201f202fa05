"""Request checks done before anything leaves the agent.

A path must stay under the integration's base URL whatever tricks it tries: an absolute URL
(``http:``), a network path (``//host``), backslashes (which some servers treat as ``/``), dot
segments raw or percent-encoded (``..``, ``%2e%2e``, normalised differently by different servers,
so refused outright), control characters, fragments. Header names and values are checked for
injection (CR, LF, NUL) and for headers only the agent may set (Host, hop-by-hop per RFC 9110
7.6.1, framing, and the credential header the agent injects).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from agent.errors import FieldViolation, InvalidRequest, PathNotAllowed

__all__ = [
    "HOP_BY_HOP",
    "check_headers",
    "check_method",
    "check_path",
    "path_allowed",
    "strip_hop_by_hop",
]

# RFC 9110 token characters (tchar).
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# Printable ASCII minus space, '#', '\\' and controls; '%' escapes are checked separately.
_PATH_CHARS = re.compile(r"^[!$&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~%]*$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SEPARATORS = re.compile(r"[\\/;]")

#: RFC 9110 7.6.1 connection-specific fields, plus proxy ones: never forwarded either way.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Set by the agent from the base URL and the body; a caller may not choose them.
_AGENT_OWNED = frozenset({"host", "content-length"})


def check_method(method: str) -> str:
    """Return the method if it is an HTTP token; methods are case-sensitive (RFC 9110 9.1)."""
    if not method or len(method) > 32 or not _TOKEN.match(method):
        raise InvalidRequest(
            f"method {method[:40]!r} is not a valid HTTP method; use e.g. GET, POST, PUT, DELETE",
            violations=[FieldViolation("method", "must be an HTTP token such as GET or POST")],
        )
    return method


def _path_violation(message: str) -> InvalidRequest:
    return InvalidRequest(
        f"path rejected: {message}; give a path relative to the integration's base_url, "
        "such as 'chat/completions' or '/v1/models?limit=5'",
        violations=[FieldViolation("path", message)],
    )


def check_path(path: str) -> tuple[str, str]:
    """Validate a relative path and return ``(path_without_query, query)``; path has no lead '/'."""
    if len(path) > 8192:
        raise _path_violation("longer than 8192 characters")
    if path.startswith("//") or path.startswith("\\"):
        raise _path_violation("a network-path reference ('//host') would leave the base URL")
    if _SCHEME.match(path):
        raise _path_violation(
            "an absolute URL (with a scheme such as 'http:') is not allowed "
            "(start the path with '/' if its first segment really contains ':')"
        )
    if not _PATH_CHARS.match(path):
        bad = next(c for c in path if not _PATH_CHARS.match(c))
        raise _path_violation(
            f"character {bad!r} is not allowed (no spaces, controls, backslashes or fragments); "
            "percent-encode it"
        )
    if _BAD_ESCAPE.search(path):
        raise _path_violation("'%' must start a percent-encoded byte such as %20")
    raw_path, _, query = path.partition("?")
    for segment in raw_path.split("/"):
        # Decode once, then split on what servers may treat as separators ('%2f', '%5c', ';').
        for piece in _SEPARATORS.split(unquote(segment)):
            if piece in (".", ".."):
                raise _path_violation(
                    "dot segments ('.', '..', also percent-encoded like %2e%2e) are not allowed"
                )
    return raw_path.lstrip("/"), query


def path_allowed(path: str, allow_paths: Iterable[str]) -> None:
    """Raise PathNotAllowed unless ``path`` (no leading '/') is under one of the prefixes."""
    prefixes = tuple(allow_paths)
    if not prefixes:
        return
    candidate = "/" + path
    for prefix in prefixes:
        p = "/" + prefix.strip("/")
        if p == "/" or candidate == p or candidate.startswith(p + "/"):
            return
    raise PathNotAllowed(
        f"path '/{path[:200]}' is not under this integration's allow_paths "
        f"({', '.join(prefixes)}); ask the operator to allow it"
    )


def check_headers(
    headers: Iterable[tuple[str, str]], forbidden: frozenset[str]
) -> list[tuple[str, str]]:
    """Return the headers if all are safe; report every bad one at once."""
    violations: list[FieldViolation] = []
    result: list[tuple[str, str]] = []
    for index, (name, value) in enumerate(headers):
        field = f"headers[{index}]"
        lower = name.lower()
        if not name or not _TOKEN.match(name):
            violations.append(
                FieldViolation(f"{field}.name", f"{name[:40]!r} is not a valid header name")
            )
        elif "\r" in value or "\n" in value or "\0" in value:
            violations.append(
                FieldViolation(f"{field}.value", f"header {name!r} contains CR, LF or NUL")
            )
        elif lower in HOP_BY_HOP or lower in _AGENT_OWNED:
            violations.append(
                FieldViolation(f"{field}.name", f"header {name!r} is set by the agent, not callers")
            )
        elif lower in forbidden:
            violations.append(
                FieldViolation(
                    f"{field}.name",
                    f"header {name!r} carries the integration's credential, "
                    "which the agent injects",
                )
            )
        else:
            result.append((name, value))
    if violations:
        summary = "; ".join(v.description for v in violations)
        raise InvalidRequest(
            f"request headers rejected: {summary}; remove or fix them",
            violations=violations,
        )
    return result


def strip_hop_by_hop(headers: Iterable[tuple[str, str]], *, decoded: bool) -> list[tuple[str, str]]:
    """Response headers safe to hand back: no hop-by-hop (nor fields named in Connection).

    ``decoded``: the body was decompressed, so Content-Encoding/Length would lie.
    """
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    drop = HOP_BY_HOP | named
    if decoded:
        drop = drop | {"content-encoding", "content-length"}
    return [(n, v) for n, v in pairs if n.lower() not in drop]
