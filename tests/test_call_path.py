"""The call path through a real in-process agent, real gRPC and a real loopback upstream."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from google.protobuf import duration_pb2

from agent.api.kilo.agent.v1 import agent_pb2 as pb
from tests.conftest import SECRET, base_config
from tests.support.grpc_errors import details_of


def req(integration: str = "echo", method: str = "GET", path: str = "/x", **kw) -> pb.CallRequest:  # type: ignore[no-untyped-def]
    headers = [pb.Header(name=k, value=v) for k, v in kw.pop("headers", [])]
    return pb.CallRequest(integration=integration, method=method, path=path, headers=headers, **kw)


async def test_call_injects_credentials_and_joins_path_under_base(agent, upstream) -> None:
    _app, stub, _ = agent
    response = await stub.Call(
        req(
            method="POST",
            path="/chat/completions?stream=false&x=1",
            headers=[("Content-Type", "application/json"), ("X-App", "checkout")],
            body=b'{"hello": "world"}',
            idempotency_key="idem-42",
        )
    )
    assert response.status == 200
    echoed = json.loads(response.body)
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/echo/base/chat/completions"
    assert echoed["query"] == "stream=false&x=1"
    assert echoed["headers"]["authorization"] == f"Bearer {SECRET}"
    assert echoed["headers"]["x-static"] == "static-value"
    assert echoed["headers"]["x-app"] == "checkout"
    assert echoed["headers"]["idempotency-key"] == "idem-42"
    assert base64.b64decode(echoed["body_b64"]) == b'{"hello": "world"}'
    names = {h.name.lower() for h in response.headers}
    assert "x-upstream" in names
    assert not names & {"keep-alive", "trailer", "connection", "transfer-encoding"}
    assert response.meta.integration == "echo"
    assert response.meta.attempts == 1
    assert response.meta.upstream_duration.ToTimedelta().total_seconds() > 0


async def test_caller_header_replaces_static_header(agent) -> None:
    _app, stub, _ = agent
    response = await stub.Call(req(headers=[("x-static", "mine")]))
    assert json.loads(response.body)["headers"]["x-static"] == "mine"


async def test_upstream_errors_are_normal_responses(agent) -> None:
    _app, stub, _ = agent
    for code in (404, 429, 503):
        response = await stub.Call(req("up", path=f"/status/{code}"))
        assert response.status == code
        assert json.loads(response.body) == {"status": code}


async def test_gzip_body_is_decoded_and_encoding_header_dropped(agent) -> None:
    _app, stub, _ = agent
    response = await stub.Call(req("up", path="/gzip"))
    assert json.loads(response.body) == {"compressed": True}
    assert "content-encoding" not in {h.name.lower() for h in response.headers}


async def test_same_origin_redirect_is_followed(agent, upstream) -> None:
    _app, stub, _ = agent
    response = await stub.Call(req("up", path="/redirect?to=/echo/landed&code=302"))
    assert response.status == 200
    assert json.loads(response.body)["path"] == "/echo/landed"
    assert response.meta.attempts == 2


async def test_cross_origin_redirect_is_returned_not_followed(agent, upstream) -> None:
    _app, stub, _ = agent
    other_origin = upstream.url.replace("127.0.0.1", "localhost") + "/echo/stolen"
    upstream.clear()
    response = await stub.Call(req("up", path=f"/redirect?to={other_origin}&code=307"))
    assert response.status == 307
    assert dict((h.name.lower(), h.value) for h in response.headers)["location"] == other_origin
    assert not any(r.path_qs.startswith("/echo/stolen") for r in upstream.requests)


async def test_big_response_body_arrives_whole(agent) -> None:
    _app, stub, _ = agent
    response = await stub.Call(req("up", path="/big?size=3000000"))
    assert len(response.body) == 3_000_000


# -- the error table of SPEC.md -------------------------------------------------------------


async def expect_error(call, code: grpc.StatusCode, reason: str):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    details = details_of(caught.value)
    assert details.code == code, details.message
    assert details.reason == reason
    assert details.domain == "kilo.agent"
    assert SECRET not in details.message
    return details


async def still_serving(stub) -> None:  # type: ignore[no-untyped-def]
    response = await stub.Call(req())
    assert response.status == 200


async def test_unknown_integration(agent) -> None:
    _app, stub, _ = agent
    details = await expect_error(
        stub.Call(req("nope")), grpc.StatusCode.NOT_FOUND, "UNKNOWN_INTEGRATION"
    )
    assert "echo" in details.message  # names what is configured
    await still_serving(stub)


@pytest.mark.parametrize("method", ["", "GE T", "GET\r\nX: y", "G(ET)", "x" * 40])
async def test_bad_method(agent, method: str) -> None:
    _app, stub, _ = agent
    details = await expect_error(
        stub.Call(req(method=method)), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"
    )
    assert details.violations[0][0] == "method"


ESCAPES = [
    "//evil.example/x",
    "http://evil.example/x",
    "https:evil.example",
    "/..",
    "../x",
    "a/../../x",
    "%2e%2e/x",
    "%2E%2E%2Fx",
    "..%2fsecret",
    "..%5c..%5cwin",
    "..;/x",
    "a\\..\\b",
    "\\\\evil/x",
    "x y",
    "x#frag",
    "x\r\nHost: evil",
    "x\x00y",
    "%zz",
]


@pytest.mark.parametrize("path", ESCAPES)
async def test_path_escapes_are_rejected_and_reach_no_upstream(agent, upstream, path: str) -> None:
    _app, stub, _ = agent
    upstream.clear()
    details = await expect_error(
        stub.Call(req(path=path)), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"
    )
    assert details.violations
    assert details.violations[0][0] == "path"
    assert upstream.requests == []
    await still_serving(stub)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Host", "evil.example"),
        ("Connection", "close"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "h2c"),
        ("TE", "trailers"),
        ("Content-Length", "5"),
        ("Authorization", "Bearer stolen"),  # the credential header the agent injects
        ("X-Ok", "a\r\nInjected: yes"),
        ("X-Ok", "a\nb"),
        ("X-Ok", "nul\x00"),
        ("Bad Name", "x"),
        (":authority", "evil"),
    ],
)
async def test_forbidden_and_malformed_headers(agent, upstream, name: str, value: str) -> None:
    _app, stub, _ = agent
    upstream.clear()
    details = await expect_error(
        stub.Call(req(headers=[("X-Fine", "1"), (name, value)])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
    )
    assert details.violations[0][0].startswith("headers[1]")
    assert upstream.requests == []


async def test_all_bad_headers_reported_at_once(agent) -> None:
    _app, stub, _ = agent
    details = await expect_error(
        stub.Call(req(headers=[("Host", "x"), ("X-A", "1\n2"), ("Connection", "close")])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
    )
    assert [f for f, _ in details.violations] == [
        "headers[0].name",
        "headers[1].value",
        "headers[2].name",
    ]


async def test_body_too_large(agent, upstream) -> None:
    _app, stub, _ = agent
    upstream.clear()
    details = await expect_error(
        stub.Call(req(method="POST", body=b"x" * 1025)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BODY_TOO_LARGE",
    )
    assert "max_body" in details.message
    assert upstream.requests == []
    response = await stub.Call(req(method="POST", body=b"x" * 1024))
    assert response.status == 200


async def test_allow_paths(agent, upstream) -> None:
    _app, stub, _ = agent
    ok = await stub.Call(req("restricted", path="/v1/models/gpt-4o"))
    assert json.loads(ok.body)["path"] == "/echo/v1/models/gpt-4o"
    ok = await stub.Call(req("restricted", path="chat?x=1"))
    assert ok.status == 200
    upstream.clear()
    for path in ("/v1/modelsX", "/admin", "/v1", "chatter"):
        await expect_error(
            stub.Call(req("restricted", path=path)),
            grpc.StatusCode.PERMISSION_DENIED,
            "PATH_NOT_ALLOWED",
        )
    assert upstream.requests == []


async def test_unreachable_upstream(agent) -> None:
    _app, stub, _ = agent
    details = await expect_error(
        stub.Call(req("dead")), grpc.StatusCode.UNAVAILABLE, "UPSTREAM_UNREACHABLE"
    )
    assert "dead" in details.message
    await still_serving(stub)


async def test_call_timeout_is_upstream_timeout(agent) -> None:
    _app, stub, _ = agent
    request = req("up", path="/slow?delay=3", timeout=duration_pb2.Duration(nanos=300_000_000))
    details = await expect_error(
        stub.Call(request), grpc.StatusCode.DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT"
    )
    assert "0.300s" in details.message
    await still_serving(stub)


async def test_grpc_deadline_bounds_upstream_timeout(agent, upstream) -> None:
    app, stub, _ = agent
    # The request's own timeout (10s) is larger than the deadline: the deadline wins.
    request = req("up", path="/slow?delay=3", timeout=duration_pb2.Duration(seconds=10))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Call(request, timeout=0.4)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await app.servicer.wait_idle(2.0)  # the agent gave up on the upstream too


async def test_callers_authenticate_and_authorize(start_agent, upstream) -> None:
    config = base_config(upstream.url)
    config["callers"] = [
        {"name": "checkout", "token": "tok-checkout-123456", "allow": ["echo"]},
        {"name": "ops", "token": "tok-ops-abcdef", "allow": ["*"]},
    ]
    _app, stub, _ = await start_agent(config)
    await expect_error(stub.Call(req()), grpc.StatusCode.UNAUTHENTICATED, "CALLER_UNAUTHENTICATED")
    wrong = [("authorization", "Bearer tok-checkout-12345X")]
    details = await expect_error(
        stub.Call(req(), metadata=wrong), grpc.StatusCode.UNAUTHENTICATED, "CALLER_UNAUTHENTICATED"
    )
    assert "tok-checkout" not in details.message
    checkout = [("authorization", "Bearer tok-checkout-123456")]
    assert (await stub.Call(req(), metadata=checkout)).status == 200
    await expect_error(
        stub.Call(req("up", path="/status/200"), metadata=checkout),
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
    )
    ops = [("authorization", "Bearer tok-ops-abcdef")]
    assert (await stub.Call(req("up", path="/status/200"), metadata=ops)).status == 200
    await expect_error(
        stub.ListIntegrations(pb.ListIntegrationsRequest()),
        grpc.StatusCode.UNAUTHENTICATED,
        "CALLER_UNAUTHENTICATED",
    )
    listed = await stub.ListIntegrations(pb.ListIntegrationsRequest(), metadata=ops)
    assert len(listed.integrations) == 4


async def test_trace_id_comes_from_callers_traceparent(agent) -> None:
    _app, stub, _ = agent
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await stub.Call(req(), metadata=[("traceparent", f"00-{trace}-00f067aa0ba902b7-01")])
    assert response.meta.trace_id == trace


# -- streaming, listing, health, reflection -------------------------------------------------


async def test_call_stream_relays_events_before_upstream_finishes(agent, upstream) -> None:
    _app, stub, _ = agent
    call = stub.CallStream(req("up", path="/sse?events=3&hold=inproc"))
    first = await call.read()
    assert first.WhichOneof("part") == "start"
    assert first.start.status == 200
    data = await call.read()
    assert data.WhichOneof("part") == "data"
    assert data.data.startswith(b"data: ")
    assert b"tok0" in data.data
    assert "inproc" not in upstream.finished_streams  # the upstream is still holding the stream
    upstream.release("inproc")
    rest = []
    while (chunk := await call.read()) is not grpc.aio.EOF:
        rest.append(chunk)
    body = data.data + b"".join(c.data for c in rest if c.WhichOneof("part") == "data")
    assert body.count(b"data: ") == 4
    assert body.endswith(b"data: [DONE]\n\n")
    assert rest[-1].WhichOneof("part") == "meta"
    assert rest[-1].meta.integration == "up"
    assert rest[-1].meta.attempts == 1


async def test_call_stream_errors_use_the_same_statuses(agent) -> None:
    _app, stub, _ = agent
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _chunk in stub.CallStream(req(path="//evil")):
            pass
    assert details_of(caught.value).reason == "INVALID_REQUEST"


async def test_list_integrations(agent, upstream) -> None:
    _app, stub, _ = agent
    listed = await stub.ListIntegrations(pb.ListIntegrationsRequest())
    by_name = {i.name: i for i in listed.integrations}
    assert set(by_name) == {"echo", "up", "restricted", "dead"}
    assert by_name["echo"].base_url == f"{upstream.url}/echo/base"
    assert by_name["echo"].credential_state == "static"
    assert by_name["up"].credential_state == "none"
    assert not by_name["echo"].HasField("credential_expires_at")


async def test_health_and_reflection(agent) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    _app, _stub, channel = agent
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "kilo.agent.v1.IntegrationAgent"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await call.read()
    await call.done_writing()
    names = {s.name for s in answer.list_services_response.service}
    assert "kilo.agent.v1.IntegrationAgent" in names
    assert "grpc.health.v1.Health" in names


async def test_http2_transport_option_serves_calls(start_agent, upstream) -> None:
    config = base_config(upstream.url)
    config["integrations"]["h2"] = {
        "base_url": f"{upstream.url}/echo",
        "transport": {"http2": True},
    }
    _app, stub, _ = await start_agent(config)
    response = await stub.Call(req("h2", method="POST", path="/x", body=b"payload"))
    assert response.status == 200
    assert base64.b64decode(json.loads(response.body)["body_b64"]) == b"payload"


async def test_caller_token_from_a_file_is_reloaded_when_the_secret_rotates(
    start_agent, upstream, tmp_path
) -> None:
    import asyncio
    import time

    from tests.support.cred_helpers import k8s_atomic_write

    secrets_dir = tmp_path / "secret"
    secrets_dir.mkdir()
    k8s_atomic_write(secrets_dir, {"token": "tok-generation-1-abcdef"}, 1)
    config = base_config(upstream.url)
    config["callers"] = [
        {"name": "app", "token": f"${{file:{secrets_dir / 'token'}}}", "allow": ["*"]}
    ]
    _app, stub, _ = await start_agent(config)
    old = [("authorization", "Bearer tok-generation-1-abcdef")]
    new = [("authorization", "Bearer tok-generation-2-ghijkl")]
    assert (await stub.Call(req(), metadata=old)).status == 200
    k8s_atomic_write(secrets_dir, {"token": "tok-generation-2-ghijkl"}, 2)
    deadline = time.monotonic() + 5
    while True:  # the watcher stats the file once a second
        try:
            assert (await stub.Call(req(), metadata=new)).status == 200
            break
        except grpc.aio.AioRpcError:
            assert time.monotonic() < deadline, "the rotated caller token was not picked up"
            await asyncio.sleep(0.1)
    await expect_error(
        stub.Call(req(), metadata=old), grpc.StatusCode.UNAUTHENTICATED, "CALLER_UNAUTHENTICATED"
    )
