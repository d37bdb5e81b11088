"""Google Vertex AI (`kind = "vertex"`): the official `openai` SDK (chat, stream, tools) and
the `anthropic` SDK (messages, stream) on a Claude and a Gemini model served by Vertex,
reasoning through tool loops as on the first-party kinds (Claude's signed thinking kept for a
chat client that drops it, Gemini 3's thought signatures), and the `openai` SDK's embeddings
(one text and a batch) on text-embedding-005 through `:predict`.

The gateway mints an access token from the session's throwaway service account at the
emulator's token endpoint (which verifies the RS256 assertion) and calls the publisher's
path with it; the emulator's Vertex routes refuse anything else
(crates/emulator/src/vertex.rs), and the recorder shows what they received.
"""

from __future__ import annotations

import json

import pytest

from test_reasoning import anthropic_turns_with_thinking, chat_loop, upstream

from sdk_helpers import (
    answer_text,
    assert_client_key_not_upstream,
    chunks,
    header_values,
    json_body,
    recorded_path,
    recorded_query,
    seq_of,
    turn_tokens,
    words,
)

CLAUDE = "claude-sonnet-4-5-vertex"
GEMINI = "gemini-2.5-flash-vertex"
EMBED = "text-embedding-005-vertex"
BASE = "/v1/projects/my-project/locations/us-east5/publishers"
PATHS = {
    CLAUDE: (f"{BASE}/anthropic/models/claude-sonnet-4-5@20250929", ":rawPredict", ":streamRawPredict"),
    GEMINI: (f"{BASE}/google/models/gemini-2.5-flash", ":generateContent", ":streamGenerateContent"),
    EMBED: (f"{BASE}/google/models/text-embedding-005", ":predict", ":predict"),
}
USER_TEXT = "Say hello in one short sentence."
MESSAGES = [{"role": "user", "content": USER_TEXT}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def assert_vertex_upstream(gateway, rec: dict, model: str, stream: bool) -> dict:
    """The publisher's path for the model, a bearer token from the token endpoint and no
    other credential; for Claude, Vertex's body (no `model`, its anthropic_version)."""
    base, whole, streamed = PATHS[model]
    assert recorded_path(rec) == base + (streamed if stream else whole)
    if model == GEMINI:
        assert recorded_query(rec) == ("alt=sse" if stream else "")
    [bearer] = header_values(rec, "authorization")
    assert bearer.startswith("Bearer ya29.emulator.")
    for header in ("x-api-key", "x-goog-api-key", "api-key"):
        assert header_values(rec, header) == [], header
    assert_client_key_not_upstream(gateway, rec)
    body = json_body(rec)
    if model == CLAUDE:
        assert "model" not in body
        assert body["anthropic_version"] == "vertex-2023-10-16"
        assert bool(body.get("stream")) == stream
    return body


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_chat(client, gateway, model):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    resp = raw.parse()
    assert resp.choices[0].message.content == answer_text()
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == turn_tokens(USER_TEXT)
    assert resp.usage.completion_tokens == 5
    assert_vertex_upstream(gateway, gateway.recorded(seq_of(raw.headers)), model, stream=False)

    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["provider"] == "emu-vertex"
    assert record["model"] == model
    assert (record["prompt_tokens"], record["completion_tokens"]) == (turn_tokens(USER_TEXT), 5)
    if model == CLAUDE:
        # Anthropic's list prices (3 and 15 USD per million tokens), rounded half up
        micro = turn_tokens(USER_TEXT) * 3_000_000 + 5 * 15_000_000
        assert record["cost_micro_usd"] == (micro + 500_000) // 1_000_000


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_stream(client, gateway, model):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, stream=True)
    seq = seq_of(raw.headers)
    got = list(raw.parse())
    deltas = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert deltas == "".join(chunks(5))
    assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "stop"
    assert_vertex_upstream(gateway, gateway.recorded(seq), model, stream=True)
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["completion_tokens"] == 5 and not record["estimated"]


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_tools(client, gateway, model):
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
    )
    resp = raw.parse()
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    body = assert_vertex_upstream(gateway, gateway.recorded(seq_of(raw.headers)), model, stream=False)
    names = json.dumps(body.get("tools"))
    assert "get_weather" in names


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages(anthropic_client, gateway, model, stream):
    kwargs = dict(model=model, max_tokens=64, messages=MESSAGES)
    if stream:
        with anthropic_client.messages.stream(**kwargs) as s:
            text = "".join(s.text_stream)
            message = s.get_final_message()
    else:
        message = anthropic_client.messages.create(**kwargs)
        text = message.content[0].text
    assert text == answer_text()
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 5
    assert_vertex_upstream(gateway, gateway.recorded("last"), model, stream=stream)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_tool_loop_on_vertex_claude_gets_its_thinking_back(gateway, client, stream):
    """The client sends back content and tool calls only: the gateway restores the signed
    thinking Vertex issued, on the turns that continue a tool call."""
    raws = chat_loop(gateway, client, CLAUDE, stream, echo_whole_message=False)
    for turn, raw in enumerate(raws):
        body = upstream(gateway, raw)
        assert body.get("thinking", {}).get("type") == "enabled", f"turn {turn + 1}: thinking switched off"
        assert "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
        if turn % 2 == 1:
            assert anthropic_turns_with_thinking(body)[-1], f"turn {turn + 1}: thinking not restored"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_tool_loop_on_vertex_gemini_3_returns_the_thought_signature(gateway, client, stream):
    raws = chat_loop(gateway, client, "gemini-3-pro-vertex", stream, echo_whole_message=False)
    for turn, raw in enumerate(raws):
        rec = gateway.recorded(seq_of(raw.headers))
        assert recorded_path(rec).startswith(f"{BASE}/google/models/gemini-3-pro-preview:")
        body = json_body(rec)
        calls = [p for c in body["contents"] if c["role"] == "model" for p in c["parts"] if "functionCall" in p]
        assert all(p.get("thoughtSignature") for p in calls), f"turn {turn + 1}: {calls}"


def test_embeddings_one_text(client, gateway):
    """One text: the SDK's default base64 decodes to text-embedding-005's 768 floats, the same
    as asked as floats; usage is Vertex's own token count, in one usage record."""
    text = "hello vertex world"
    raw = client.embeddings.with_raw_response.create(model=EMBED, input=text)
    resp = raw.parse()
    assert (resp.object, resp.model, [d.index for d in resp.data]) == ("list", EMBED, [0])
    vec = resp.data[0].embedding
    assert len(vec) == 768 and all(-1.0 <= x < 1.0 for x in vec)
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == words(text)
    as_float = client.embeddings.create(model=EMBED, input=text, encoding_format="float")
    assert as_float.data[0].embedding == pytest.approx(vec, abs=1e-6)

    body = assert_vertex_upstream(gateway, gateway.recorded(seq_of(raw.headers)), EMBED, stream=False)
    assert body == {"instances": [{"content": text}], "parameters": {"autoTruncate": True}}
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert (record["provider"], record["model"], record["prompt_tokens"]) == ("emu-vertex", EMBED, words(text))


def test_embeddings_batch(client, gateway):
    """A batch with `dimensions`: one vector of that size per text, in order, each the
    text's own; usage the sum of Vertex's counts."""
    texts = ["first text", "second", "the third one"]
    raw = client.embeddings.with_raw_response.create(model=EMBED, input=texts, dimensions=64)
    resp = raw.parse()
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert {len(d.embedding) for d in resp.data} == {64}
    assert len({tuple(d.embedding) for d in resp.data}) == 3
    single = client.embeddings.create(model=EMBED, input="second", dimensions=64)
    assert single.data[0].embedding == pytest.approx(resp.data[1].embedding, abs=1e-6)
    assert resp.usage.prompt_tokens == sum(words(t) for t in texts)

    body = assert_vertex_upstream(gateway, gateway.recorded(seq_of(raw.headers)), EMBED, stream=False)
    assert body == {
        "instances": [{"content": t} for t in texts],
        "parameters": {"autoTruncate": True, "outputDimensionality": 64},
    }
