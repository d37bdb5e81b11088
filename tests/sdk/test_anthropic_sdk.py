"""The official `anthropic` Python SDK (and the `openai` one on a Claude model) against the
real gateway, both ways:

* `claude-3-5-sonnet` is served by an Anthropic-format provider: an Anthropic client is passed
  through natively (only the key and the model name change);
* `gpt-4o` is served by an OpenAI-format provider: an Anthropic client is translated
  Anthropic → OpenAI and the answer back;
* an OpenAI client on `claude-3-5-sonnet` is translated OpenAI → Anthropic and back.

Expected values follow the emulator's deterministic rules (crates/emulator/src/lib.rs,
crates/emulator/src/anthropic.rs); the recorder shows what the upstream actually received.
"""

from __future__ import annotations

import base64
import json

import anthropic
import openai
import pytest
import requests

from sdk_helpers import (
    answer_text,
    assert_client_key_not_upstream,
    chunks,
    header_values,
    json_body,
    last_recorded,
    recorded_path,
    seq_of,
    sha256_bytes,
    turn_tokens,
)

NATIVE = "claude-3-5-sonnet"  # provider emu-anthropic (Anthropic format)
NATIVE_UPSTREAM = "claude-3-5-sonnet-20241022"
TRANSLATED = "gpt-4o"  # provider emu (OpenAI format)
BOTH = pytest.mark.parametrize(
    "model", [NATIVE, TRANSLATED], ids=["native-anthropic", "translated-openai"]
)

SYSTEM_TEXT = "You are a terse assistant."
SYSTEM = [{"type": "text", "text": SYSTEM_TEXT, "cache_control": {"type": "ephemeral"}}]
USER_TEXT = "Say hello in one short sentence."
MESSAGES = [{"role": "user", "content": USER_TEXT}]
PROMPT_TOKENS = turn_tokens(SYSTEM_TEXT, USER_TEXT)  # 8 + 9 = 17
BETA = "prompt-caching-2024-07-31"

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
TOOLS = [{"name": "get_weather", "description": "Current weather in a city", "input_schema": WEATHER_SCHEMA}]
# The emulator calls the first tool with the first required property set to an example value.
TOOL_INPUT = {"city": "Paris"}
TOOL_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


def anthropic_error_body(exc: anthropic.APIStatusError) -> dict:
    body = exc.response.json()
    assert body.get("type") == "error", f"not an Anthropic error body: {body}"
    assert isinstance(body.get("error"), dict), f"not an Anthropic error body: {body}"
    assert isinstance(body["error"].get("type"), str), body
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body
    assert exc.response.headers.get("x-request-id"), "error response without x-request-id"
    return body


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# 1. messages.create ---------------------------------------------------------------


@BOTH
def test_messages_create(anthropic_client, model):
    raw = anthropic_client.messages.with_raw_response.create(
        model=model,
        max_tokens=256,
        system=SYSTEM,
        metadata={"user_id": "u1"},
        messages=MESSAGES,
        extra_headers={"anthropic-beta": BETA},
    )
    assert raw.status_code == 200
    assert raw.headers.get("x-request-id"), f"no x-request-id header: {dict(raw.headers)}"
    msg = raw.parse()

    assert isinstance(msg, anthropic.types.Message)
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert isinstance(msg.id, str) and msg.id
    # Passthrough: the provider's own model name (as Anthropic answers with the dated id);
    # translated: the model the client asked for.
    assert msg.model == (NATIVE_UPSTREAM if model == NATIVE else TRANSLATED)
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Hello world1 world2 world3 world4"
    assert msg.stop_reason == "end_turn"
    assert msg.stop_sequence is None
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens == 5
    # Anthropic's input_tokens excludes cache reads; together they are the whole prompt.
    assert msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0) == PROMPT_TOKENS


@BOTH
def test_messages_create_string_system_and_chunks(anthropic_client, model):
    msg = anthropic_client.messages.create(
        model=model,
        max_tokens=64,
        system=SYSTEM_TEXT,
        messages=MESSAGES,
        extra_headers={"x-emulator-chunks": "3"},
    )
    assert text_of(msg) == "Hello world1 world2"
    assert msg.usage.output_tokens == 3
    assert msg.usage.input_tokens == PROMPT_TOKENS  # no cache_control: nothing read from cache
    assert (msg.usage.cache_read_input_tokens or 0) == 0


# 2. streaming ---------------------------------------------------------------------


@BOTH
def test_messages_stream(anthropic_client, model):
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=256,
        system=SYSTEM,
        messages=MESSAGES,
        extra_headers={"x-emulator-chunks": "7", "anthropic-beta": BETA},
    ) as stream:
        assert stream.response.headers.get("content-type", "").startswith("text/event-stream")
        deltas = list(stream.text_stream)
        final = stream.get_final_message()

    assert deltas == chunks(7), f"text deltas: {deltas!r}"
    assert "".join(deltas) == answer_text(7)
    assert text_of(final) == answer_text(7)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7
    assert final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0) == PROMPT_TOKENS


@BOTH
def test_messages_stream_raw_events(anthropic_client, model):
    """The event sequence an Anthropic client relies on (stream=True without the helper)."""
    events = list(
        anthropic_client.messages.create(model=model, max_tokens=64, messages=MESSAGES, stream=True)
    )
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert "message_delta" in types
    assert types.index("content_block_start") < types.index("content_block_delta")
    assert types.index("content_block_stop") < types.index("message_delta")
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == answer_text()
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 5


# 3. tool use ----------------------------------------------------------------------


@BOTH
def test_tool_use_round_trip(anthropic_client, gateway, model):
    first = anthropic_client.messages.create(model=model, max_tokens=256, tools=TOOLS, messages=TOOL_QUESTION)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert len(uses) == 1, f"content: {first.content}"
    use = uses[0]
    assert use.name == "get_weather"
    assert isinstance(use.input, dict)
    assert use.input == TOOL_INPUT
    assert isinstance(use.id, str) and use.id

    # The tool result goes back; tool_choice none asks for a plain text answer.
    history = TOOL_QUESTION + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 degrees and sunny"}]},
    ]
    raw = anthropic_client.messages.with_raw_response.create(
        model=model, max_tokens=256, tools=TOOLS, tool_choice={"type": "none"}, messages=history
    )
    second = raw.parse()
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["text"]
    assert text_of(second) == answer_text()
    assert second.usage.output_tokens == 5

    # The upstream got the tool result, in its own format.
    up = json_body(gateway.recorded(seq_of(raw.headers)))
    if model == NATIVE:
        result = up["messages"][2]["content"][0]
        assert result["type"] == "tool_result"
        assert result["tool_use_id"] == use.id
    else:
        tool_msgs = [m for m in up["messages"] if m.get("role") == "tool"]
        assert len(tool_msgs) == 1, up["messages"]
        assert tool_msgs[0]["tool_call_id"] == use.id
        assert "21 degrees and sunny" in json.dumps(tool_msgs[0]["content"])
        calls = [m for m in up["messages"] if m.get("role") == "assistant"][0]["tool_calls"]
        assert calls[0]["id"] == use.id
        assert calls[0]["function"]["name"] == "get_weather"
        assert json.loads(calls[0]["function"]["arguments"]) == TOOL_INPUT
        assert up["tool_choice"] == "none"


@BOTH
def test_tool_use_streaming(anthropic_client, model):
    with anthropic_client.messages.stream(
        model=model,
        max_tokens=256,
        tools=TOOLS,
        messages=TOOL_QUESTION,
        extra_headers={"x-emulator-chunks": "4"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    json_events = [e for e in events if e.type == "input_json"]
    fragments = [e.partial_json for e in json_events if e.partial_json]
    assert len(fragments) == 4, f"expected 4 argument fragments: {fragments!r}"
    assert json.loads("".join(fragments)) == TOOL_INPUT
    assert json_events[-1].snapshot == TOOL_INPUT

    uses = [b for b in final.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].input == TOOL_INPUT
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 4


TIME_TOOL = {
    "name": "get_time",
    "description": "Current time in a time zone",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["tz"]},
}


@BOTH
def test_tool_choice_named_tool(anthropic_client, gateway, model):
    raw = anthropic_client.messages.with_raw_response.create(
        model=model,
        max_tokens=128,
        tools=TOOLS + [TIME_TOOL],
        tool_choice={"type": "tool", "name": "get_time"},
        messages=[{"role": "user", "content": "What time is it?"}],
    )
    msg = raw.parse()
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_time", {"tz": "UTC"})]
    up = json_body(gateway.recorded(seq_of(raw.headers)))
    if model == NATIVE:
        assert up["tool_choice"] == {"type": "tool", "name": "get_time"}
    else:
        assert up["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


@BOTH
def test_image_block(anthropic_client, gateway, model):
    """Claude Code sends screenshots as base64 image blocks."""
    data = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a png").decode()
    raw = anthropic_client.messages.with_raw_response.create(
        model=model,
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                    {"type": "text", "text": "What is in this picture?"},
                ],
            }
        ],
    )
    msg = raw.parse()
    assert text_of(msg) == answer_text()
    assert msg.usage.input_tokens == turn_tokens("What is in this picture?")  # images count 0 words
    parts = json_body(gateway.recorded(seq_of(raw.headers)))["messages"][0]["content"]
    if model == NATIVE:
        assert parts[0] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    else:
        assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
        assert parts[1] == {"type": "text", "text": "What is in this picture?"}


# 4. count_tokens ------------------------------------------------------------------


@BOTH
def test_count_tokens(anthropic_client, model):
    count = anthropic_client.messages.count_tokens(model=model, system=SYSTEM, messages=MESSAGES)
    assert isinstance(count.input_tokens, int)
    assert count.input_tokens > 0
    if model == NATIVE:
        # Answered by the (emulated) provider: its own count, no cache split.
        assert count.input_tokens == PROMPT_TOKENS


def test_count_tokens_with_tools_translated(anthropic_client):
    plain = anthropic_client.messages.count_tokens(model=TRANSLATED, messages=MESSAGES)
    with_tools = anthropic_client.messages.count_tokens(model=TRANSLATED, messages=MESSAGES, tools=TOOLS)
    assert plain.input_tokens > 0
    assert with_tools.input_tokens >= plain.input_tokens


# 5. errors ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["api_key", "auth_token"])
def test_error_bad_key(gateway, how):
    bad = anthropic.Anthropic(base_url=gateway.root_url, max_retries=0, timeout=30, **{how: "cai-not-a-real-key"})
    with pytest.raises(anthropic.AuthenticationError) as ei:
        bad.messages.create(model=NATIVE, max_tokens=16, messages=MESSAGES)
    assert ei.value.status_code == 401
    body = anthropic_error_body(ei.value)
    assert body["error"]["type"] == "authentication_error"
    assert "cai-not-a-real-key" not in ei.value.response.text


def test_error_unknown_model(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as ei:
        anthropic_client.messages.create(model="claude-no-such-model", max_tokens=16, messages=MESSAGES)
    assert ei.value.status_code == 404
    assert anthropic_error_body(ei.value)["error"]["type"] == "not_found_error"


def test_error_model_not_allowed(gateway):
    limited = anthropic.Anthropic(base_url=gateway.root_url, api_key=gateway.other_key, max_retries=0, timeout=30)
    with pytest.raises(anthropic.PermissionDeniedError) as ei:
        limited.messages.create(model=NATIVE, max_tokens=16, messages=MESSAGES)
    assert ei.value.status_code == 403
    assert anthropic_error_body(ei.value)["error"]["type"] == "permission_error"


@BOTH
@pytest.mark.parametrize(
    "status, error_class, error_type",
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (500, anthropic.InternalServerError, "api_error"),
    ],
    ids=["429", "400", "500"],
)
def test_error_upstream_status(anthropic_client, model, status, error_class, error_type):
    with pytest.raises(error_class) as ei:
        anthropic_client.messages.create(
            model=model, max_tokens=16, messages=MESSAGES, extra_headers={"x-emulator-status": str(status)}
        )
    assert ei.value.status_code == status
    assert anthropic_error_body(ei.value)["error"]["type"] == error_type
    if status == 429:
        assert ei.value.response.headers.get("retry-after") == "1", "retry-after of the provider not kept"


def test_error_body_too_large(anthropic_client):
    with pytest.raises(anthropic.APIStatusError) as ei:
        anthropic_client.messages.create(
            model=NATIVE, max_tokens=16, messages=[{"role": "user", "content": "x " * 6_000_000}]
        )
    assert ei.value.status_code == 413
    assert anthropic_error_body(ei.value)["error"]["type"] == "request_too_large"


def test_error_overloaded_529_native_passthrough(anthropic_client, gateway):
    """Claude Code matches upstream error text: a native 529 comes back unmodified."""
    with pytest.raises(anthropic.InternalServerError) as ei:
        anthropic_client.messages.create(
            model=NATIVE, max_tokens=16, messages=MESSAGES, extra_headers={"x-emulator-status": "529"}
        )
    exc = ei.value
    if hasattr(anthropic, "OverloadedError"):
        assert isinstance(exc, anthropic.OverloadedError)
    assert exc.status_code == 529
    assert anthropic_error_body(exc)["error"]["type"] == "overloaded_error"
    rec = last_recorded(gateway, exc.response.headers["x-request-id"])
    assert rec["response_sha256"] == sha256_bytes(exc.response.content), (
        f"the provider's 529 body was modified: client got {exc.response.text!r}"
    )


def test_error_stream_429_is_http_error(anthropic_client):
    """An upstream error before the first byte is an HTTP error, not a 200 stream."""
    with pytest.raises(anthropic.RateLimitError):
        with anthropic_client.messages.stream(
            model=NATIVE, max_tokens=16, messages=MESSAGES, extra_headers={"x-emulator-status": "429"}
        ) as stream:
            list(stream)


@BOTH
@pytest.mark.parametrize("fault", ["x-emulator-stream-error-after", "x-emulator-drop-after"])
def test_stream_failure_midway(anthropic_client, model, fault):
    """A provider failing after the stream began: the text so far arrives, then the SDK raises
    on the Anthropic `error` event (the status can no longer change)."""
    got: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as ei:
        with anthropic_client.messages.stream(
            model=model, max_tokens=64, messages=MESSAGES, extra_headers={fault: "4"}
        ) as stream:
            for text in stream.text_stream:
                got.append(text)
    assert got, "no text before the failure"
    assert answer_text().startswith("".join(got))
    assert "".join(got) != answer_text(), "the whole answer arrived despite the failure"
    body = ei.value.body
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["error"]["type"] in ("api_error", "overloaded_error"), body
    if model == NATIVE and fault == "x-emulator-stream-error-after":
        # The provider's own error event, passed through.
        assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


# 6. native passthrough specifics ---------------------------------------------------


@pytest.mark.parametrize("client_fixture", ["anthropic_client", "anthropic_token_client"])
def test_native_passthrough_upstream_request(request, gateway, client_fixture):
    client = request.getfixturevalue(client_fixture)
    raw = client.messages.with_raw_response.create(
        model=NATIVE,
        max_tokens=128,
        system=SYSTEM,
        metadata={"user_id": "u1"},
        messages=MESSAGES,
        extra_headers={"anthropic-beta": BETA},
    )
    msg = raw.parse()
    assert text_of(msg) == answer_text()
    sent = raw.http_request.content
    sent_version = raw.http_request.headers["anthropic-version"]

    rec = gateway.recorded(seq_of(raw.headers))
    assert rec["method"] == "POST"
    assert recorded_path(rec) == "/v1/messages"
    assert header_values(rec, "x-api-key") == [gateway.anthropic_provider_key]
    assert header_values(rec, "authorization") == [], "the client's Authorization must not reach the provider"
    assert header_values(rec, "anthropic-version") == [sent_version]
    assert header_values(rec, "anthropic-beta") == [BETA]
    assert_client_key_not_upstream(gateway, rec)

    # The body goes up unchanged except for the model name.
    client_model = b'"model":"' + NATIVE.encode() + b'"'
    assert sent.count(client_model) == 1, sent
    expected = sent.replace(client_model, b'"model":"' + NATIVE_UPSTREAM.encode() + b'"')
    up = json_body(rec)
    assert up == {**json.loads(sent), "model": NATIVE_UPSTREAM}
    assert up["system"] == SYSTEM and up["metadata"] == {"user_id": "u1"}
    assert rec["body_sha256"] == sha256_bytes(expected), "body re-serialised instead of passed through"

    # The cache_control went up as sent; the prompt is under Anthropic's 1,024-token minimum,
    # so nothing is cached and all of it is input (test_usage.py covers a cached prefix).
    assert (msg.usage.cache_read_input_tokens or 0) == 0
    assert (msg.usage.cache_creation_input_tokens or 0) == 0
    assert msg.usage.input_tokens == PROMPT_TOKENS


def test_native_passthrough_answer_unchanged(gateway):
    """JSON and SSE answers of an Anthropic provider reach an Anthropic client byte for byte."""
    headers = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    body = {"model": NATIVE, "max_tokens": 64, "messages": MESSAGES}
    resp = requests.post(f"{gateway.root_url}/v1/messages", headers=headers, json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == NATIVE_UPSTREAM  # whatever the provider says, as for OpenAI
    rec = gateway.recorded(seq_of(resp.headers))
    assert rec["response_complete"] is True
    assert rec["response_sha256"] == sha256_bytes(resp.content)

    resp = requests.post(
        f"{gateway.root_url}/v1/messages", headers=headers, json={**body, "stream": True}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in resp.headers
    names = [line[len("event:"):].strip() for line in resp.text.splitlines() if line.startswith("event:")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    rec = gateway.recorded(seq_of(resp.headers))
    assert rec["response_sha256"] == sha256_bytes(resp.content)


def test_native_claude_code_style_request(gateway):
    """What Claude Code sends: Bearer token, `?beta=true`, beta flags, x-app."""
    body = json.dumps(
        {"model": NATIVE, "max_tokens": 512, "messages": [{"role": "user", "content": "hi from claude code"}]}
    ).encode()
    beta = "claude-code-20250219,interleaved-thinking-2025-05-14"
    headers = {
        "authorization": f"Bearer {gateway.key}",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": beta,
        "content-type": "application/json",
        "x-app": "cli",
        "user-agent": "claude-cli/1.0.0 (external, cli)",
    }
    resp = requests.post(f"{gateway.root_url}/v1/messages?beta=true", data=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["type"] == "message"
    assert data["content"][0]["text"] == answer_text()
    assert data["usage"]["input_tokens"] == turn_tokens("hi from claude code")

    rec = gateway.recorded(seq_of(resp.headers))
    assert recorded_path(rec) == "/v1/messages"
    assert header_values(rec, "x-api-key") == [gateway.anthropic_provider_key]
    assert header_values(rec, "authorization") == []
    assert header_values(rec, "anthropic-version") == ["2023-06-01"]
    assert header_values(rec, "anthropic-beta") == [beta]
    assert_client_key_not_upstream(gateway, rec)
    assert json_body(rec) == {**json.loads(body), "model": NATIVE_UPSTREAM}

    resp = requests.post(
        f"{gateway.root_url}/v1/messages/count_tokens?beta=true", data=body, headers=headers, timeout=30
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"input_tokens": turn_tokens("hi from claude code")}
    rec = gateway.recorded(seq_of(resp.headers))
    assert recorded_path(rec) == "/v1/messages/count_tokens"
    assert header_values(rec, "x-api-key") == [gateway.anthropic_provider_key]


# 7. translated specifics (Anthropic client → OpenAI-format provider) ---------------------


def test_translated_upstream_request(anthropic_client, gateway):
    raw = anthropic_client.messages.with_raw_response.create(
        model=TRANSLATED,
        max_tokens=300,
        system=SYSTEM,
        metadata={"user_id": "u1"},
        messages=TOOL_QUESTION,
        tools=TOOLS,
        extra_headers={"anthropic-beta": BETA},
    )
    msg = raw.parse()
    assert msg.stop_reason == "tool_use"

    rec = gateway.recorded(seq_of(raw.headers))
    assert rec["method"] == "POST"
    assert recorded_path(rec) == "/v1/chat/completions"
    assert header_values(rec, "authorization") == [f"Bearer {gateway.provider_key}"]
    assert header_values(rec, "x-api-key") == []
    assert header_values(rec, "anthropic-version") == [], "Anthropic headers must not reach an OpenAI provider"
    assert header_values(rec, "anthropic-beta") == []
    assert_client_key_not_upstream(gateway, rec)

    up = json_body(rec)
    assert up["model"] == TRANSLATED
    assert up["messages"][0] == {"role": "system", "content": SYSTEM_TEXT}
    assert up["messages"][1]["role"] == "user"
    assert json.dumps(up["messages"][1]["content"]).find("What is the weather in Paris?") >= 0
    assert up["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]
    assert up.get("user") == "u1"
    assert "cache_control" not in json.dumps(up)
    assert "system" not in up and "metadata" not in up


def test_translated_stream_asks_for_usage(anthropic_client, gateway):
    with anthropic_client.messages.stream(model=TRANSLATED, max_tokens=64, messages=MESSAGES) as stream:
        final = stream.get_final_message()
        seq = seq_of(stream.response.headers)
    assert final.usage.output_tokens == 5
    assert final.usage.input_tokens == turn_tokens(USER_TEXT)
    up = json_body(gateway.recorded(seq))
    assert up["stream"] is True
    assert up.get("stream_options", {}).get("include_usage") is True


# 8. models ------------------------------------------------------------------------


def test_models_anthropic_shape(gateway):
    resp = requests.get(
        f"{gateway.base_url}/models",
        headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "object" not in body
    assert body["has_more"] is False
    assert isinstance(body["data"], list) and body["data"]
    for m in body["data"]:
        assert m["type"] == "model"
        assert isinstance(m["id"], str) and m["id"]
        assert isinstance(m["display_name"], str)
        assert isinstance(m["created_at"], str)
    ids = [m["id"] for m in body["data"]]
    assert {NATIVE, TRANSLATED, "gemini-1-5-pro"} <= set(ids)
    assert body["first_id"] == ids[0] and body["last_id"] == ids[-1]


def test_models_list_sdk(anthropic_client, gateway):
    ids = {m.id for m in anthropic_client.models.list()}
    assert {NATIVE, TRANSLATED, "gemini-1-5-pro", "text-embedding-3"} <= ids
    info = anthropic_client.models.retrieve(NATIVE)
    assert info.id == NATIVE and info.type == "model"
    limited = anthropic.Anthropic(base_url=gateway.root_url, api_key=gateway.other_key, max_retries=0, timeout=30)
    assert [m.id for m in limited.models.list()] == [TRANSLATED]


def test_models_list_pagination(anthropic_client):
    """`limit` pages the list (Anthropic's `first_id`/`last_id`/`has_more` paging); the SDK
    follows `after_id` for the rest."""
    everything = [m.id for m in anthropic_client.models.list()]
    page = anthropic_client.models.list(limit=2)
    assert len(page.data) == 2, f"limit=2 returned {len(page.data)} models"
    assert page.has_more is True
    assert [m.id for m in page] == everything  # auto-pagination walks every page


# 9. the openai SDK on an Anthropic-format model (OpenAI → Anthropic translation) ---------------

OPENAI_MESSAGES = [{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": USER_TEXT}]
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_SCHEMA},
    }
]


def test_openai_chat_on_claude(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=NATIVE, messages=OPENAI_MESSAGES)
    assert raw.headers.get("x-request-id")
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.model == NATIVE
    assert len(resp.choices) == 1
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "Hello world1 world2 world3 world4"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == PROMPT_TOKENS
    assert resp.usage.completion_tokens == 5
    assert resp.usage.total_tokens == PROMPT_TOKENS + 5

    rec = gateway.recorded(seq_of(raw.headers))
    assert recorded_path(rec) == "/v1/messages"
    assert header_values(rec, "x-api-key") == [gateway.anthropic_provider_key]
    assert header_values(rec, "authorization") == []
    assert header_values(rec, "anthropic-version") == ["2023-06-01"]
    assert_client_key_not_upstream(gateway, rec)
    up = json_body(rec)
    assert up["model"] == NATIVE_UPSTREAM
    assert isinstance(up["max_tokens"], int) and up["max_tokens"] > 0
    assert [m["role"] for m in up["messages"]] == ["user"]
    assert SYSTEM_TEXT in json.dumps(up["system"])


def test_openai_stream_on_claude(client):
    chunks_ = list(client.chat.completions.create(model=NATIVE, messages=OPENAI_MESSAGES, stream=True))
    assert chunks_, "stream yielded no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks_)
    assert all(c.choices for c in chunks_), "a usage chunk without include_usage"
    assert all(c.usage is None for c in chunks_)
    content = "".join(c.choices[0].delta.content or "" for c in chunks_)
    assert content == answer_text()
    assert chunks_[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks_[:-1])


def test_openai_stream_on_claude_include_usage(client):
    chunks_ = list(
        client.chat.completions.create(
            model=NATIVE,
            messages=OPENAI_MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-emulator-chunks": "3"},
        )
    )
    last = chunks_[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == 3
    assert last.usage.total_tokens == PROMPT_TOKENS + 3
    with_choices = [c for c in chunks_ if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == answer_text(3)
    assert with_choices[-1].choices[0].finish_reason == "stop"


def test_openai_stream_on_claude_raw_sse(gateway):
    resp = requests.post(
        f"{gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={"model": NATIVE, "messages": OPENAI_MESSAGES, "stream": True},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [line for line in resp.text.splitlines() if line.startswith("data:")]
    assert events[-1].strip() == "data: [DONE]"
    for line in events[:-1]:
        assert json.loads(line[len("data:"):])["object"] == "chat.completion.chunk"
    assert not any(line.startswith("event:") for line in resp.text.splitlines()), "Anthropic event names leaked"


def test_openai_tool_calls_on_claude(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model=NATIVE,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=OPENAI_TOOLS,
    )
    resp = raw.parse()
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == TOOL_INPUT
    assert calls[0].id

    up = json_body(gateway.recorded(seq_of(raw.headers)))
    # no system prompt: the gateway's prompt-cache breakpoint goes on the last tool
    assert up["tools"] == [
        {"name": "get_weather", "description": "Current weather in a city", "input_schema": WEATHER_SCHEMA,
         "cache_control": {"type": "ephemeral"}}
    ]

    # Round trip: the tool result goes back as a tool message, the answer is text.
    follow = client.chat.completions.create(
        model=NATIVE,
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump(exclude_none=True)]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": "21 degrees and sunny"},
        ],
        tools=OPENAI_TOOLS,
        tool_choice="none",
    )
    assert follow.choices[0].finish_reason == "stop"
    assert follow.choices[0].message.content == answer_text()


def test_openai_tool_calls_stream_on_claude(client):
    chunks_ = list(
        client.chat.completions.create(
            model=NATIVE,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=OPENAI_TOOLS,
            stream=True,
        )
    )
    args, names, ids = "", [], []
    for c in chunks_:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            assert tc.index == 0
            if tc.id:
                ids.append(tc.id)
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
    assert names == ["get_weather"]
    assert len(ids) == 1
    assert json.loads(args) == TOOL_INPUT
    assert [c for c in chunks_ if c.choices][-1].choices[0].finish_reason == "tool_calls"


def test_openai_errors_on_claude(client):
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model=NATIVE, messages=OPENAI_MESSAGES, extra_headers={"x-emulator-status": "429"})
    assert ei.value.status_code == 429
    assert isinstance(ei.value.response.json()["error"]["message"], str)
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=NATIVE, messages=OPENAI_MESSAGES, extra_headers={"x-emulator-status": "400"})
    assert ei.value.status_code == 400
    # Anthropic's 529 means nothing to OpenAI clients: they get 503 (translation.md E).
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model=NATIVE, messages=OPENAI_MESSAGES, extra_headers={"x-emulator-status": "529"})
    assert ei.value.status_code == 503
    assert ei.value.response.json()["error"]["type"] == "server_error"
