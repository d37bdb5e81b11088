"""AWS Bedrock (`kind = "bedrock"`): the official `openai` SDK (chat, stream, tools) and the
`anthropic` SDK (messages, whole and streamed, tools) on a Claude model served through
Bedrock's InvokeModel, both SDKs on Amazon Nova served through Bedrock's Converse API, and
the `openai` SDK's embeddings on Titan Text Embeddings V2 (one text) and Cohere Embed v3
(a batch) through the same signed InvokeModel.

The gateway signs every request with SigV4 and sends Anthropic's body without `model` and
`stream`; the emulator's Bedrock routes verify the signature with the same key
(crates/emulator/src/bedrock.rs) and stream in AWS's binary event-stream framing, which the
gateway turns back into each client's own stream.
"""

from __future__ import annotations

import json

import openai
import pytest

from conftest import BEDROCK_ACCESS_KEY_ID, BEDROCK_SECRET_ACCESS_KEY
from sdk_helpers import (
    answer_text,
    assert_client_key_not_upstream,
    assert_openai_error,
    chunks,
    header_values,
    json_body,
    recorded_path,
    seq_of,
    turn_tokens,
    words,
)

MODEL = "claude-sonnet-4-5-bedrock"
MODEL_PATH = "/model/anthropic.claude-sonnet-4-5-v1%3A0"
TITAN = "titan-embed-bedrock"
COHERE = "cohere-embed-bedrock"
USER_TEXT = "Say hello in one short sentence."
MESSAGES = [{"role": "user", "content": USER_TEXT}]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_SCHEMA},
    }
]


def assert_bedrock_upstream(gateway, rec: dict, stream: bool) -> dict:
    """InvokeModel's path for the model id, a SigV4 signature by the test key (the emulator
    verified it), Bedrock's body; no client key and no secret on the wire."""
    operation = "invoke-with-response-stream" if stream else "invoke"
    body = assert_signed(gateway, rec, f"{MODEL_PATH}/{operation}")
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in body and "stream" not in body
    return body


def assert_signed(gateway, rec: dict, path: str) -> dict:
    """`path`, a SigV4 signature by the test key for us-east-1, no client key and no secret
    on the wire; returns the body sent."""
    assert recorded_path(rec) == path
    [auth] = header_values(rec, "authorization")
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request" in auth
    assert len(header_values(rec, "x-amz-date")) == 1
    assert header_values(rec, "x-api-key") == []
    assert BEDROCK_SECRET_ACCESS_KEY not in json.dumps(rec)
    assert_client_key_not_upstream(gateway, rec)
    return json_body(rec)


def test_chat(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    resp = raw.parse()
    assert resp.choices[0].message.content == answer_text()
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == turn_tokens(USER_TEXT)
    assert resp.usage.completion_tokens == 5
    assert_bedrock_upstream(gateway, gateway.recorded(seq_of(raw.headers)), stream=False)

    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["provider"] == "emu-bedrock"
    assert record["model"] == MODEL
    assert (record["prompt_tokens"], record["completion_tokens"]) == (turn_tokens(USER_TEXT), 5)
    # Anthropic's list prices (3 and 15 USD per million tokens), rounded half up
    micro = turn_tokens(USER_TEXT) * 3_000_000 + 5 * 15_000_000
    assert record["cost_micro_usd"] == (micro + 500_000) // 1_000_000


def test_stream(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    seq = seq_of(raw.headers)
    got = list(raw.parse())
    deltas = [c.choices[0].delta.content for c in got if c.choices and c.choices[0].delta.content]
    assert deltas == chunks(5)
    finishes = [c.choices[0].finish_reason for c in got if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert got[-1].usage.completion_tokens == 5
    assert_bedrock_upstream(gateway, gateway.recorded(seq), stream=True)
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["completion_tokens"] == 5 and not record["estimated"]


def test_tools(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
    )
    resp = raw.parse()
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    body = assert_bedrock_upstream(gateway, gateway.recorded(seq_of(raw.headers)), stream=False)
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tools"][0]["input_schema"] == WEATHER_SCHEMA


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages(anthropic_client, gateway, stream):
    kwargs = dict(model=MODEL, max_tokens=64, messages=MESSAGES)
    if stream:
        with anthropic_client.messages.stream(**kwargs) as s:
            text = "".join(s.text_stream)
            message = s.get_final_message()
    else:
        message = anthropic_client.messages.create(**kwargs)
        text = message.content[0].text
    assert text == answer_text()
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == turn_tokens(USER_TEXT)
    assert message.usage.output_tokens == 5
    body = assert_bedrock_upstream(gateway, gateway.recorded("last"), stream=stream)
    assert body["max_tokens"] == 64


def test_anthropic_tools(anthropic_client, gateway):
    message = anthropic_client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[{"name": "get_weather", "description": "Current weather in a city", "input_schema": WEATHER_SCHEMA}],
    )
    assert message.stop_reason == "tool_use"
    [call] = [b for b in message.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    assert_bedrock_upstream(gateway, gateway.recorded("last"), stream=False)


def test_embeddings_one_text_on_titan(client, gateway):
    """The SDK's default base64 decodes to Titan's 1024 normalized floats, the same as asked
    as floats; usage is Titan's own count, in one usage record."""
    text = "hello big world"
    raw = client.embeddings.with_raw_response.create(model=TITAN, input=text)
    resp = raw.parse()
    assert (resp.object, resp.model, [d.index for d in resp.data]) == ("list", TITAN, [0])
    vec = resp.data[0].embedding
    assert len(vec) == 1024
    assert sum(x * x for x in vec) == pytest.approx(1.0, abs=1e-4)
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == words(text)
    as_float = client.embeddings.create(model=TITAN, input=text, encoding_format="float")
    assert as_float.data[0].embedding == pytest.approx(vec, abs=1e-6)

    rec = gateway.recorded(seq_of(raw.headers))
    body = assert_signed(gateway, rec, "/model/amazon.titan-embed-text-v2%3A0/invoke")
    assert body == {"inputText": text, "normalize": True}
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert (record["provider"], record["model"], record["prompt_tokens"]) == ("emu-bedrock", TITAN, words(text))

    # Titan embeds one text per request: a batch is refused, naming the limit
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=TITAN, input=["a", "b"])
    error = assert_openai_error(refused.value)["error"]
    assert error["param"] == "input" and "one text per request" in error["message"]


def test_embeddings_batch_on_cohere(client, gateway):
    """A batch on Cohere Embed: one vector per text in order, each the text's own."""
    texts = ["first text", "second", "the third one"]
    raw = client.embeddings.with_raw_response.create(model=COHERE, input=texts)
    resp = raw.parse()
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert {len(d.embedding) for d in resp.data} == {1024}
    assert len({tuple(d.embedding) for d in resp.data}) == 3
    single = client.embeddings.create(model=COHERE, input="second", encoding_format="float")
    assert single.data[0].embedding == pytest.approx(resp.data[1].embedding, abs=1e-6)

    rec = gateway.recorded(seq_of(raw.headers))
    body = assert_signed(gateway, rec, "/model/cohere.embed-english-v3/invoke")
    assert body == {"texts": texts, "input_type": "search_document", "embedding_types": ["float"]}
    # Cohere's answer has no count: the gateway's, in the answer and the record alike
    assert resp.usage.prompt_tokens > 0
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["prompt_tokens"] == resp.usage.prompt_tokens


# ---------------------------------------------------------------- Nova, through Converse

NOVA = "nova-pro-bedrock"
NOVA_PATH = "/model/amazon.nova-pro-v1%3A0"


def assert_converse_upstream(gateway, rec: dict, stream: bool) -> dict:
    """Converse's path for the model id, signed as InvokeModel's requests are (the emulator
    verified the signature); Converse's body, which the emulator checked against its rules."""
    operation = "converse-stream" if stream else "converse"
    assert recorded_path(rec) == f"{NOVA_PATH}/{operation}"
    [auth] = header_values(rec, "authorization")
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={BEDROCK_ACCESS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request" in auth
    assert BEDROCK_SECRET_ACCESS_KEY not in json.dumps(rec)
    assert_client_key_not_upstream(gateway, rec)
    body = json_body(rec)
    assert "model" not in body and "stream" not in body and "anthropic_version" not in body
    return body


def test_nova_chat(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=NOVA, messages=MESSAGES)
    resp = raw.parse()
    assert resp.choices[0].message.content == answer_text()
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == NOVA
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (turn_tokens(USER_TEXT), 5)
    body = assert_converse_upstream(gateway, gateway.recorded(seq_of(raw.headers)), stream=False)
    assert body["messages"] == [{"role": "user", "content": [{"text": USER_TEXT}]}]

    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert (record["provider"], record["model"]) == ("emu-bedrock", NOVA)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (turn_tokens(USER_TEXT), 5)
    # Bedrock's list prices for Nova Pro (0.80 and 3.20 USD per million tokens), rounded half up
    micro = turn_tokens(USER_TEXT) * 800_000 + 5 * 3_200_000
    assert record["cost_micro_usd"] == (micro + 500_000) // 1_000_000


def test_nova_stream(client, gateway):
    raw = client.chat.completions.with_raw_response.create(
        model=NOVA, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    seq = seq_of(raw.headers)
    got = list(raw.parse())
    deltas = [c.choices[0].delta.content for c in got if c.choices and c.choices[0].delta.content]
    assert deltas == chunks(5)
    finishes = [c.choices[0].finish_reason for c in got if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert got[-1].usage.completion_tokens == 5
    assert_converse_upstream(gateway, gateway.recorded(seq), stream=True)
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["completion_tokens"] == 5 and not record["estimated"]


@pytest.mark.parametrize("stream", [False, True])
def test_nova_tool_loop(client, gateway, stream):
    question = {"role": "user", "content": "What is the weather in Paris?"}
    kwargs = dict(model=NOVA, messages=[question], tools=TOOLS)
    if stream:
        raw = client.chat.completions.with_raw_response.create(**kwargs, stream=True)
        seq = seq_of(raw.headers)
        got = list(raw.parse())
        parts = [tc for c in got if c.choices and c.choices[0].delta.tool_calls for tc in c.choices[0].delta.tool_calls]
        call_id, name = parts[0].id, parts[0].function.name
        arguments = "".join(p.function.arguments or "" for p in parts)
        finishes = [c.choices[0].finish_reason for c in got if c.choices and c.choices[0].finish_reason]
        assert finishes == ["tool_calls"]
    else:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        seq = seq_of(raw.headers)
        resp = raw.parse()
        assert resp.choices[0].finish_reason == "tool_calls"
        call = resp.choices[0].message.tool_calls[0]
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Paris"}
    body = assert_converse_upstream(gateway, gateway.recorded(seq), stream=stream)
    spec = body["toolConfig"]["tools"][0]["toolSpec"]
    assert (spec["name"], spec["inputSchema"]["json"]) == ("get_weather", WEATHER_SCHEMA)

    # the result goes back; the emulator accepts it only paired with the call
    follow_up = [
        question,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
    ]
    raw = client.chat.completions.with_raw_response.create(model=NOVA, messages=follow_up, tools=TOOLS)
    assert raw.parse().choices[0].message.content == answer_text()
    body = assert_converse_upstream(gateway, gateway.recorded(seq_of(raw.headers)), stream=False)
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": call_id, "content": [{"text": "18C and sunny"}]}}
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_nova_anthropic_messages(anthropic_client, gateway, stream):
    kwargs = dict(model=NOVA, max_tokens=64, system="Be brief.", messages=MESSAGES)
    if stream:
        with anthropic_client.messages.stream(**kwargs) as s:
            text = "".join(s.text_stream)
            message = s.get_final_message()
    else:
        message = anthropic_client.messages.create(**kwargs)
        text = message.content[0].text
    assert text == answer_text()
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == turn_tokens("Be brief.", USER_TEXT)
    assert message.usage.output_tokens == 5
    body = assert_converse_upstream(gateway, gateway.recorded("last"), stream=stream)
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"] == {"maxTokens": 64}
