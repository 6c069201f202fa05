"""LLM token estimation from request bodies and usage from responses and SSE streams."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.policies import SSEUsage, TokenUsage, estimate_tokens, extract_usage


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("doc", "output"),
    [
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 300},
            300,
        ),
        ({"model": "o3", "messages": [], "max_completion_tokens": 4096}, 4096),
        ({"model": "gpt-4.1", "input": "Tell me a story", "max_output_tokens": 800}, 800),
        ({"model": "claude-sonnet-4", "max_tokens": 1024, "messages": []}, 1024),
        (
            {
                "contents": [{"parts": [{"text": "hi"}]}],
                "generationConfig": {"maxOutputTokens": 256},
            },
            256,
        ),
        ({"model": "gpt-4o", "messages": []}, 0),
    ],
)
def test_estimate_is_output_budget_plus_prompt_bytes_over_four(doc: object, output: int) -> None:
    raw = body(doc)
    assert estimate_tokens(raw) == output + -(-len(raw) // 4)


def test_estimate_scales_with_the_prompt() -> None:
    small = body({"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 10})
    large = body({"messages": [{"role": "user", "content": "x" * 40_000}], "max_tokens": 10})
    assert estimate_tokens(large) - estimate_tokens(small) == (40_000 - 40) / 4


def test_estimate_is_robust_to_non_json() -> None:
    assert estimate_tokens(b"") == 0
    assert estimate_tokens(b"\xff\xfe not json at all") == 5
    assert estimate_tokens(b"{broken json", default_output_tokens=100) == 3 + 100
    assert estimate_tokens(b'["a list"]') == 3
    assert (
        estimate_tokens(body({"max_tokens": "lots"}), default_output_tokens=7) == 6 + 7
    )  # 22 bytes


def test_usage_from_each_provider_response() -> None:
    openai_chat = {"usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}}
    assert extract_usage(body(openai_chat)) == TokenUsage(19, 10)
    responses = {"object": "response", "usage": {"input_tokens": 36, "output_tokens": 87}}
    assert extract_usage(body(responses)) == TokenUsage(36, 87)
    anthropic = {
        "type": "message",
        "usage": {
            "input_tokens": 2095,
            "output_tokens": 503,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
        },
    }
    assert extract_usage(body(anthropic)) == TokenUsage(3195, 503)
    gemini = {
        "candidates": [],
        "usageMetadata": {
            "promptTokenCount": 8,
            "candidatesTokenCount": 120,
            "thoughtsTokenCount": 30,
            "totalTokenCount": 158,
        },
    }
    assert extract_usage(body(gemini)).total == 158  # type: ignore[union-attr]
    assert extract_usage(b'{"id": 1}') is None
    assert extract_usage(b"usage: not json") is None


OPENAI_STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":""}}],"usage":null}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":'
    b'{"content":"Hello"}}],"usage":null}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":'
    b'{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}\n\n'
    b"data: [DONE]\n\n"
)

ANTHROPIC_STREAM = (
    b"event: message_start\r\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"content":[],"usage":{"input_tokens":25,"output_tokens":1}}}\r\n\r\n'
    b"event: content_block_delta\r\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}'
    b"\r\n\r\n"
    b"event: message_delta\r\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":'
    b'{"output_tokens":15}}\r\n\r\n'
    b"event: message_stop\r\n"
    b'data: {"type":"message_stop"}\r\n\r\n'
)

GEMINI_STREAM = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"A"}]}}],"usageMetadata":'
    b'{"promptTokenCount":7,"candidatesTokenCount":1,"totalTokenCount":8}}\r\n\r\n'
    b'data: {"candidates":[{"content":{"parts":[{"text":"B"}]}}],"usageMetadata":'
    b'{"promptTokenCount":7,"candidatesTokenCount":40,"totalTokenCount":47}}\r\n\r\n'
)

RESPONSES_STREAM = (
    b"event: response.output_text.delta\n"
    b'data: {"type":"response.output_text.delta","delta":"Hi"}\n\n'
    b"event: response.completed\n"
    b'data: {"type":"response.completed","response":{"id":"resp_1","usage":'
    b'{"input_tokens":11,"output_tokens":22,"total_tokens":33}}}\n\n'
)


@pytest.mark.parametrize(
    ("stream", "usage"),
    [
        (OPENAI_STREAM, TokenUsage(9, 12)),
        (ANTHROPIC_STREAM, TokenUsage(25, 15)),
        (GEMINI_STREAM, TokenUsage(7, 40)),
        (RESPONSES_STREAM, TokenUsage(11, 22)),
    ],
)
def test_streamed_usage(stream: bytes, usage: TokenUsage) -> None:
    parser = SSEUsage()
    parser.feed(stream)
    assert parser.usage == usage


@settings(max_examples=200, deadline=None)
@given(
    stream=st.sampled_from([OPENAI_STREAM, ANTHROPIC_STREAM, GEMINI_STREAM, RESPONSES_STREAM]),
    cuts=st.lists(st.integers(0, 2000), max_size=12),
)
def test_streamed_usage_does_not_depend_on_chunk_boundaries(stream: bytes, cuts: list[int]) -> None:
    whole = SSEUsage()
    whole.feed(stream)
    parser = SSEUsage()
    points = sorted({c % (len(stream) + 1) for c in cuts})
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        parser.feed(stream[a:b])
    assert parser.usage == whole.usage is not None


def test_usage_is_none_until_reported_and_close_flushes_a_final_event() -> None:
    parser = SSEUsage()
    parser.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n')
    assert parser.usage is None
    parser.feed(b'data: {"usage":{"prompt_tokens":1,"completion_tokens":2}}')  # no blank line
    assert parser.usage is None
    parser.close()
    assert parser.usage == TokenUsage(1, 2)


def test_multi_line_data_and_comments() -> None:
    parser = SSEUsage()
    parser.feed(
        b': keep-alive\n\ndata: {"usage":\ndata: {"prompt_tokens":3,"completion_tokens":4}}\n\n'
    )
    assert parser.usage == TokenUsage(3, 4)
