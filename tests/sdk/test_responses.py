"""OpenAI's Responses API through the gateway with the official SDK: passthrough to a host
that serves /v1/responses, and translated (Responses → chat → the provider's format) for
OpenAI-format, Anthropic and Gemini models. Text, a function tool round trip, usage, the
usage record, and the SDK's error classes."""

from __future__ import annotations

import json

import openai
import pytest

EXPECTED = "Hello world1 world2 world3 world4"
MODELS = ["gpt-native", "gpt-4o", "claude-3-5-sonnet", "gemini-1-5-pro"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.mark.parametrize("model", MODELS)
def test_create_answers_text_with_usage_and_a_record(gateway, client, model):
    raw = client.responses.with_raw_response.create(model=model, input="Say hello", instructions="Be brief.")
    r = raw.parse()
    assert r.output_text == EXPECTED
    assert r.status == "completed"
    assert r.usage.output_tokens == 5
    assert r.usage.input_tokens > 0
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["endpoint"] == "responses"
    assert record["model"] == model
    assert record["completion_tokens"] == 5
    assert record["estimated"] is False
    assert record["cost_micro_usd"] > 0 or model == "gemini-1-5-pro"


@pytest.mark.parametrize("model", MODELS)
def test_stream_events_in_order_with_usage(client, model):
    types, text = [], ""
    with client.responses.stream(model=model, input="Say hello") as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = stream.get_final_response()
    assert text == EXPECTED
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "response.output_item.added" in types and "response.output_item.done" in types
    assert final.usage.output_tokens == 5


@pytest.mark.parametrize("model", MODELS)
def test_function_tool_round_trip(client, model):
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = client.responses.create(
        model=model,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
    )
    assert second.output_text == EXPECTED


def test_errors_have_the_sdks_classes(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="claude-3-5-sonnet", input="hi", previous_response_id="resp_1")
    assert caught.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", input="hi", conversation="conv_1")
    assert caught.value.body["param"] == "conversation"
