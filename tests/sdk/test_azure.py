"""Azure OpenAI (`kind = "azure"`): the official `openai` SDK (chat, stream, tools,
embeddings) and the `anthropic` SDK (messages) on a model served by an Azure deployment.

The gateway speaks OpenAI's format to the deployment's URL
(`/openai/deployments/{deployment}/…?api-version=V`) with the key in `api-key`; the
emulator's Azure routes refuse anything else (crates/emulator/src/azure.rs), and the
recorder shows what they received.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from conftest import AZURE_API_VERSION
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
)

MODEL = "gpt-4o-azure"
DEPLOYMENT = "gpt-4o-eu"
EMBED_MODEL = "text-embedding-3-azure"
EMBED_DEPLOYMENT = "text-embedding-3-small"
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


def assert_azure_upstream(gateway, rec: dict, deployment: str, operation: str) -> None:
    """The deployment's path with the configured api-version, Azure's key header only."""
    assert recorded_path(rec) == f"/openai/deployments/{deployment}/{operation}"
    assert recorded_query(rec) == f"api-version={AZURE_API_VERSION}"
    assert header_values(rec, "api-key") == [gateway.azure_provider_key]
    assert header_values(rec, "authorization") == [], "no bearer token may reach Azure"
    assert json_body(rec)["model"] == deployment
    assert_client_key_not_upstream(gateway, rec)


def test_chat(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    resp = raw.parse()
    assert resp.choices[0].message.content == answer_text()
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == turn_tokens(USER_TEXT)
    assert resp.usage.completion_tokens == 5
    for header in ("apim-request-id", "x-ms-region"):
        assert header not in raw.headers, f"{header}: the resource's own header reached the client"
    assert_azure_upstream(gateway, gateway.recorded(seq_of(raw.headers)), DEPLOYMENT, "chat/completions")

    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["provider"] == "emu-azure"
    assert record["model"] == MODEL
    assert (record["prompt_tokens"], record["completion_tokens"]) == (turn_tokens(USER_TEXT), 5)
    # priced as the catalog entry says (2.5 and 10 USD per million tokens), rounded half up
    micro = turn_tokens(USER_TEXT) * 2_500_000 + 5 * 10_000_000
    assert record["cost_micro_usd"] == (micro + 500_000) // 1_000_000


def test_stream(client, gateway):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, stream=True)
    seq = seq_of(raw.headers)
    got = list(raw.parse())
    deltas = [c.choices[0].delta.content for c in got if c.choices and c.choices[0].delta.content]
    assert deltas == chunks(5)
    assert got[-1].choices[0].finish_reason == "stop"
    rec = gateway.recorded(seq)
    assert_azure_upstream(gateway, rec, DEPLOYMENT, "chat/completions")
    # the gateway asks for usage to meter the stream, and keeps the usage chunk to itself
    assert json_body(rec)["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in got)
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
    rec = gateway.recorded(seq_of(raw.headers))
    assert_azure_upstream(gateway, rec, DEPLOYMENT, "chat/completions")
    assert json_body(rec)["tools"] == TOOLS


def test_embeddings(client, gateway):
    raw = client.embeddings.with_raw_response.create(model=EMBED_MODEL, input=["first text", "second"])
    resp = raw.parse()
    assert [d.index for d in resp.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in resp.data)
    assert resp.usage.prompt_tokens == 3
    assert_azure_upstream(gateway, gateway.recorded(seq_of(raw.headers)), EMBED_DEPLOYMENT, "embeddings")


def test_content_filter_refusal_is_an_openai_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, extra_headers={"x-emulator-content-filter": "prompt"}
        )
    error = caught.value.response.json()["error"]
    assert error["code"] == "content_filter"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"


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
    assert message.usage.output_tokens == 5
    rec = requests_last(gateway)
    assert_azure_upstream(gateway, rec, DEPLOYMENT, "chat/completions")


def test_anthropic_content_filter(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=MESSAGES,
            extra_headers={"x-emulator-content-filter": "prompt"},
        )
    assert "content management policy" in caught.value.message


def requests_last(gateway) -> dict:
    """The emulator's most recent request (the Anthropic SDK's answers are read whole, so
    the one just made)."""
    return gateway.recorded("last")
