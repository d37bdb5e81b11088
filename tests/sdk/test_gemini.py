"""The Gemini provider: the official `openai` SDK (and the `anthropic` one) on models served
in Google's Gemini format (`generateContent`, `streamGenerateContent?alt=sse`,
`embedContent`, `batchEmbedContents`), translated both ways by the gateway.

Expected values follow the emulator's rules (crates/emulator/src/gemini.rs, gemini/generate.rs,
gemini/embed.rs); the recorder shows what the upstream actually received.
"""

from __future__ import annotations

import json

import openai
import pytest

from sdk_helpers import (
    answer_text,
    assert_client_key_not_upstream,
    assert_openai_error,
    chunks,
    header_values,
    json_body,
    recorded_path,
    recorded_query,
    seq_of,
    turn_tokens,
)

MODEL = "gemini-1-5-pro"
UPSTREAM = "gemini-1.5-pro"
EMBED_MODEL = "text-embedding-004"  # no upstream_model: the same name upstream

SYSTEM_TEXT = "You are a terse assistant."
USER_TEXT = "Say hello in one short sentence."
MESSAGES = [{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": USER_TEXT}]
PROMPT_TOKENS = turn_tokens(SYSTEM_TEXT, USER_TEXT)  # systemInstruction counts like a message: 17

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_SCHEMA},
    }
]
TOOL_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOL_ARGS = {"city": "Paris"}


def assert_gemini_upstream(gateway, rec: dict) -> None:
    """Google's API-key auth in a header, nothing else."""
    assert header_values(rec, "x-goog-api-key") == [gateway.gemini_provider_key]
    assert header_values(rec, "authorization") == [], "no Authorization header may reach Gemini"
    assert header_values(rec, "x-api-key") == []
    assert "key=" not in recorded_query(rec), f"API key in the query string: {rec['path']}"
    assert gateway.gemini_provider_key not in rec["path"]
    assert_client_key_not_upstream(gateway, rec)


# 1. chat ---------------------------------------------------------------------------


def test_chat(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert raw.status_code == 200
    assert raw.headers.get("x-request-id")
    resp = raw.parse()
    assert resp.object == "chat.completion"
    assert resp.model == MODEL
    assert isinstance(resp.id, str) and resp.id
    assert len(resp.choices) == 1
    msg = resp.choices[0].message
    assert msg.role == "assistant"
    assert msg.content == "Hello world1 world2 world3 world4"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == PROMPT_TOKENS
    assert resp.usage.completion_tokens == 5
    assert resp.usage.total_tokens == PROMPT_TOKENS + 5

    rec = gateway.recorded(seq_of(raw.headers))
    assert rec["method"] == "POST"
    assert rec["path"] == f"/v1beta/models/{UPSTREAM}:generateContent"
    assert_gemini_upstream(gateway, rec)
    up = json_body(rec)
    assert "model" not in up and "messages" not in up
    assert up["systemInstruction"]["parts"] == [{"text": SYSTEM_TEXT}]
    assert up["contents"] == [{"role": "user", "parts": [{"text": USER_TEXT}]}]


def test_chat_chunk_count_and_max_tokens(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": USER_TEXT}],
        max_tokens=50,
        temperature=0.2,
        extra_headers={"x-emulator-chunks": "3"},
    )
    resp = raw.parse()
    assert resp.choices[0].message.content == "Hello world1 world2"
    assert resp.usage.completion_tokens == 3
    assert resp.usage.prompt_tokens == turn_tokens(USER_TEXT)
    cfg = json_body(gateway.recorded(seq_of(raw.headers)))["generationConfig"]
    assert cfg["maxOutputTokens"] == 50
    assert cfg["temperature"] == 0.2


# 2. streaming ----------------------------------------------------------------------


def test_stream(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, stream=True)
    seq = seq_of(raw.headers)
    got = list(raw.parse())
    assert got, "stream yielded no chunks"
    assert all(c.object == "chat.completion.chunk" for c in got)
    assert all(c.model == MODEL for c in got)
    assert all(c.choices for c in got), "a usage chunk without include_usage"
    deltas = [c.choices[0].delta.content for c in got if c.choices[0].delta.content]
    assert deltas == chunks(5)
    assert "".join(deltas) == "Hello world1 world2 world3 world4"
    assert got[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in got[:-1])

    rec = gateway.recorded(seq)
    assert recorded_path(rec) == f"/v1beta/models/{UPSTREAM}:streamGenerateContent"
    assert recorded_query(rec) == "alt=sse"
    assert_gemini_upstream(gateway, rec)


def test_stream_include_usage(client):
    got = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-emulator-chunks": "4"},
        )
    )
    last = got[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == 4
    assert last.usage.total_tokens == PROMPT_TOKENS + 4
    assert all(c.usage is None for c in got[:-1])
    with_choices = [c for c in got if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == answer_text(4)
    assert with_choices[-1].choices[0].finish_reason == "stop"


# 3. tool calls ---------------------------------------------------------------------


def test_tool_call(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=TOOL_QUESTION, tools=TOOLS)
    resp = raw.parse()
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == TOOL_ARGS
    assert isinstance(calls[0].id, str) and calls[0].id  # Gemini has none: the gateway makes one

    up = json_body(gateway.recorded(seq_of(raw.headers)))
    decls = [d for t in up["tools"] for d in t.get("functionDeclarations", [])]
    assert [d["name"] for d in decls] == ["get_weather"]
    assert decls[0]["parameters"]["properties"]["city"]["type"] in ("string", "STRING")

    # Round trip: the result goes back as a functionResponse; the answer is text.
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=TOOL_QUESTION
        + [
            {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump(exclude_none=True)]},
            {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 21}'},
        ],
        tools=TOOLS,
        tool_choice="none",
    )
    follow = raw.parse()
    assert follow.choices[0].finish_reason == "stop"
    assert follow.choices[0].message.content == answer_text()
    up = json_body(gateway.recorded(seq_of(raw.headers)))
    parts = [p for c in up["contents"] for p in c["parts"]]
    assert any(p.get("functionCall", {}).get("name") == "get_weather" for p in parts)
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    assert len(responses) == 1 and responses[0]["name"] == "get_weather"


def test_tool_call_stream(client):
    got = list(client.chat.completions.create(model=MODEL, messages=TOOL_QUESTION, tools=TOOLS, stream=True))
    args, names = "", []
    for c in got:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
    assert names == ["get_weather"]
    assert json.loads(args) == TOOL_ARGS
    assert [c for c in got if c.choices][-1].choices[0].finish_reason == "tool_calls"


# 4. embeddings ---------------------------------------------------------------------


def test_embeddings_single(client, gateway):
    raw = client.embeddings.with_raw_response.create(model=EMBED_MODEL, input="hello world")
    resp = raw.parse()  # the SDK asks for base64 by default and decodes it
    assert resp.object == "list"
    assert resp.model == EMBED_MODEL
    assert len(resp.data) == 1
    vec = resp.data[0].embedding
    assert resp.data[0].index == 0
    assert isinstance(vec, list) and len(vec) == 8  # the emulator's default dimension
    assert all(isinstance(x, float) and -1.0 <= x < 1.0 for x in vec)
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens

    as_float = client.embeddings.create(model=EMBED_MODEL, input="hello world", encoding_format="float")
    assert as_float.data[0].embedding == pytest.approx(vec, abs=1e-6)

    rec = gateway.recorded(seq_of(raw.headers))
    assert rec["path"] == f"/v1beta/models/{EMBED_MODEL}:embedContent"
    assert_gemini_upstream(gateway, rec)
    assert json_body(rec)["content"]["parts"] == [{"text": "hello world"}]


def test_embeddings_batch(client, gateway):
    texts = ["first text", "second", "the third one"]
    raw = client.embeddings.with_raw_response.create(model=EMBED_MODEL, input=texts)
    resp = raw.parse()
    assert len(resp.data) == 3
    assert [d.index for d in resp.data] == [0, 1, 2]
    dims = {len(d.embedding) for d in resp.data}
    assert dims == {8}
    vectors = [tuple(d.embedding) for d in resp.data]
    assert len(set(vectors)) == 3, "different texts must get different vectors"
    assert resp.usage.prompt_tokens > 0

    # Deterministic per text: the batch's vector equals the text's own.
    single = client.embeddings.create(model=EMBED_MODEL, input="second")
    assert single.data[0].embedding == pytest.approx(resp.data[1].embedding, abs=1e-6)

    rec = gateway.recorded(seq_of(raw.headers))
    assert rec["path"] == f"/v1beta/models/{EMBED_MODEL}:batchEmbedContents"
    assert_gemini_upstream(gateway, rec)
    reqs = json_body(rec)["requests"]
    assert [r["content"]["parts"] for r in reqs] == [[{"text": t}] for t in texts]
    assert all(r["model"] == f"models/{EMBED_MODEL}" for r in reqs)


# 5. errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, error_class, error_type",
    [
        (429, openai.RateLimitError, "rate_limit_error"),
        (400, openai.BadRequestError, "invalid_request_error"),
        (500, openai.InternalServerError, "server_error"),
    ],
    ids=["429", "400", "500"],
)
def test_error_upstream_status(client, status, error_class, error_type):
    with pytest.raises(error_class) as ei:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-emulator-status": str(status)}
        )
    assert ei.value.status_code == status
    assert assert_openai_error(ei.value)["error"]["type"] == error_type


def test_error_upstream_429_streaming(client):
    with pytest.raises(openai.RateLimitError):
        list(
            client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, extra_headers={"x-emulator-status": "429"}
            )
        )


def test_error_embeddings_429(client):
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model=EMBED_MODEL, input="x", extra_headers={"x-emulator-status": "429"})


@pytest.mark.parametrize("fault", ["x-emulator-stream-error-after", "x-emulator-drop-after"])
def test_stream_failure_midway(client, fault):
    """After the stream began the status cannot change: the text so far, then the error event
    the OpenAI SDK raises as APIError; no finish_reason is invented."""
    got: list = []
    with pytest.raises(openai.APIError) as ei:
        for c in client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, extra_headers={fault: "3"}
        ):
            got.append(c)
    assert not isinstance(ei.value, openai.APIStatusError), "an HTTP error status after the stream began"
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert text and answer_text().startswith(text) and text != answer_text()
    assert all(c.choices[0].finish_reason is None for c in got if c.choices)
    assert ei.value.message


def test_provider_key_not_in_error(client, gateway):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_headers={"x-emulator-status": "403"})
    assert gateway.gemini_provider_key not in ei.value.response.text
    for name, value in ei.value.response.headers.items():
        assert gateway.gemini_provider_key not in value, f"provider key leaked in header {name}"


# 6. the Anthropic SDK on a Gemini model (Anthropic → OpenAI → Gemini) ------------------------


def test_anthropic_messages_on_gemini(anthropic_client, gateway):
    raw = anthropic_client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=128,
        system=SYSTEM_TEXT,
        messages=[{"role": "user", "content": USER_TEXT}],
    )
    msg = raw.parse()
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Hello world1 world2 world3 world4"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == PROMPT_TOKENS
    assert msg.usage.output_tokens == 5

    rec = gateway.recorded(seq_of(raw.headers))
    assert rec["path"] == f"/v1beta/models/{UPSTREAM}:generateContent"
    assert_gemini_upstream(gateway, rec)
    assert header_values(rec, "anthropic-version") == []
    up = json_body(rec)
    assert up["systemInstruction"]["parts"] == [{"text": SYSTEM_TEXT}]
    assert up["generationConfig"]["maxOutputTokens"] == 128


def test_anthropic_stream_on_gemini(anthropic_client, gateway):
    with anthropic_client.messages.stream(
        model=MODEL,
        max_tokens=128,
        messages=[{"role": "user", "content": USER_TEXT}],
        extra_headers={"x-emulator-chunks": "6"},
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
        seq = seq_of(stream.response.headers)
    assert deltas == chunks(6)
    assert "".join(b.text for b in final.content if b.type == "text") == answer_text(6)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6

    rec = gateway.recorded(seq)
    assert recorded_path(rec) == f"/v1beta/models/{UPSTREAM}:streamGenerateContent"
    assert recorded_query(rec) == "alt=sse"
    assert_gemini_upstream(gateway, rec)


def test_anthropic_tool_use_on_gemini(anthropic_client, gateway):
    raw = anthropic_client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=128,
        tools=[{"name": "get_weather", "description": "Current weather in a city", "input_schema": WEATHER_SCHEMA}],
        messages=TOOL_QUESTION,
    )
    msg = raw.parse()
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "get_weather"
    assert uses[0].input == TOOL_ARGS
    assert uses[0].id
    up = json_body(gateway.recorded(seq_of(raw.headers)))
    decls = [d for t in up["tools"] for d in t.get("functionDeclarations", [])]
    assert [d["name"] for d in decls] == ["get_weather"]
