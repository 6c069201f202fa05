"""The client side of the CLI: ``call`` and ``status`` against a running agent."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from agent.api.kilo.agent.v1 import agent_pb2_grpc as pb_grpc

__all__ = ["call", "status"]

_MAX_MESSAGE = 64 * 1024 * 1024


def _stub(target: str) -> tuple[grpc.Channel, pb_grpc.IntegrationAgentStub]:
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
        ],
    )
    return channel, pb_grpc.IntegrationAgentStub(channel)


def _metadata(token: str) -> tuple[tuple[str, str | bytes], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data.startswith("@"):
        return Path(data[1:]).read_bytes()
    return data.encode()


def _headers(raw: list[str]) -> list[pb.Header]:
    headers = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep:
            raise SystemExit(f"kilo-agent call: header {item!r} must look like 'Name: value'")
        headers.append(pb.Header(name=name.strip(), value=value.strip()))
    return headers


def _message(error: grpc.RpcError) -> str:
    return str(error.details()) if hasattr(error, "details") else str(error)


def _report_error(error: grpc.RpcError) -> int:
    """Print a gRPC error with its reason and details; exit code 1."""
    code = error.code() if hasattr(error, "code") else None
    print(
        f"error: {code.name if code else 'UNKNOWN'}: {_message(error)}",
        file=sys.stderr,
    )
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None  # type: ignore[arg-type]
    for detail in status.details if status else []:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                text = json_format.MessageToJson(message, indent=None)
                print(f"  {kind.__name__}: {text}", file=sys.stderr)
    if code == grpc.StatusCode.UNAVAILABLE and "connect" in str(error.details()).lower():
        print(
            "  is the agent running? start it with `kilo-agent serve`, or pass --target",
            file=sys.stderr,
        )
    return 1


def _meta_dict(meta: pb.CallMeta) -> dict[str, Any]:
    return json_format.MessageToDict(meta, preserving_proto_field_name=True)


def call(args: argparse.Namespace) -> int:
    request = pb.CallRequest(
        integration=args.integration,
        method=args.method,
        path=args.path,
        headers=_headers(args.header),
        body=_body(args.data),
        idempotency_key=args.idempotency_key,
    )
    if args.timeout:
        request.timeout.FromNanoseconds(int(args.timeout * 1e9))
    channel, stub = _stub(args.target)
    try:
        with channel:
            if args.stream:
                return _call_stream(stub, request, args)
            response = stub.Call(request, timeout=args.deadline, metadata=_metadata(args.token))
    except grpc.RpcError as error:
        return _report_error(error)
    if args.json:
        print(
            json.dumps(
                {
                    "status": response.status,
                    "headers": [[h.name, h.value] for h in response.headers],
                    "body": response.body.decode("utf-8", "replace"),
                    "meta": _meta_dict(response.meta),
                }
            )
        )
        return 0
    print(f"status: {response.status}")
    for header in response.headers:
        print(f"{header.name}: {header.value}")
    print()
    sys.stdout.write(response.body.decode("utf-8", "replace"))
    if response.body and not response.body.endswith(b"\n"):
        print()
    print(f"\nmeta: {json.dumps(_meta_dict(response.meta))}", file=sys.stderr)
    return 0


def _call_stream(
    stub: pb_grpc.IntegrationAgentStub, request: pb.CallRequest, args: argparse.Namespace
) -> int:
    for chunk in stub.CallStream(request, timeout=args.deadline, metadata=_metadata(args.token)):
        part = chunk.WhichOneof("part")
        if part == "start":
            print(f"status: {chunk.start.status}")
            for header in chunk.start.headers:
                print(f"{header.name}: {header.value}")
            print(flush=True)
        elif part == "data":
            sys.stdout.buffer.write(chunk.data)
            sys.stdout.flush()
        elif part == "meta":
            print(f"\nmeta: {json.dumps(_meta_dict(chunk.meta))}", file=sys.stderr)
    return 0


def status(args: argparse.Namespace) -> int:
    channel, stub = _stub(args.target)
    try:
        with channel:
            response = stub.ListIntegrations(
                pb.ListIntegrationsRequest(), timeout=args.deadline, metadata=_metadata(args.token)
            )
    except grpc.RpcError as error:
        return _report_error(error)
    rows: list[dict[str, Any]] = []
    for item in response.integrations:
        rows.append(
            {
                "name": item.name,
                "base_url": item.base_url,
                "circuit": pb.CircuitState.Name(item.circuit_state).removeprefix("CIRCUIT_STATE_"),
                "rate_limit_available": item.rate_limit_available,
                "credential": item.credential_state,
                "expires_at": item.credential_expires_at.ToJsonString()
                if item.HasField("credential_expires_at")
                else "",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no integrations configured")
        return 0
    table = [["NAME", "BASE URL", "CIRCUIT", "AVAILABLE", "CREDENTIAL", "EXPIRES"]]
    for row in rows:
        available = row["rate_limit_available"]
        table.append(
            [
                row["name"],
                row["base_url"],
                row["circuit"],
                "unlimited" if math.isinf(available) else f"{available:g}",
                row["credential"],
                row["expires_at"] or "-",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0
