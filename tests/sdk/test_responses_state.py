"""Stateful Responses on translated models, through the official SDK: the gateway keeps each
stored response (`store` defaults to true) in its usage ledger's store, per key, so
`previous_response_id`, `responses.retrieve`, `responses.input_items.list` and
`responses.delete` work on OpenAI-format, Anthropic and Gemini models, whose providers keep
nothing. A follow-up sent the moment an answer ends finds it; another key's id is 404 as an
unknown one is; the provider receives the whole conversation, its own signed reasoning
included."""

from __future__ import annotations

import openai
import pytest

from sdk_helpers import json_body, seq_of
from test_reasoning import RESPONSES_TOOLS, anthropic_turns_with_thinking

EXPECTED = "Hello world1 world2 world3 world4"
MODELS = ["gpt-4o", "claude-3-5-sonnet", "gemini-1-5-pro"]


def upstream(gateway, raw) -> dict:
    return json_body(gateway.recorded(seq_of(raw.headers)))


def texts(body: dict) -> list[tuple[str, str]]:
    """The (role, text) turns a provider received, whatever its format."""
    def flat(content) -> str:
        if isinstance(content, str):
            return content
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))

    if "contents" in body:  # Gemini
        return [(c["role"], flat(c["parts"])) for c in body["contents"]]
    return [
        (m["role"], flat(m.get("content") or ""))
        for m in body["messages"]
        if m["role"] in ("user", "assistant")
    ]


def create(client, stream: bool, **kwargs):
    """A create call, streamed or not; returns (raw, final response object)."""
    if stream:
        raw = client.responses.with_raw_response.create(stream=True, **kwargs)
        done = [e for e in raw.parse() if e.type in ("response.completed", "response.incomplete")]
        assert done, "no terminal event"
        return raw, done[-1].response
    raw = client.responses.with_raw_response.create(**kwargs)
    return raw, raw.parse()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_a_follow_up_sent_at_once_continues_the_conversation(gateway, client, model, stream):
    _, first = create(client, stream, model=model, input="Say hello", instructions="Be brief.")
    assert first.store is True and first.id.startswith("resp_")
    assert first.output_text == EXPECTED
    # sent the instant the first answer ended: its state is there
    raw, second = create(client, stream, model=model, input="Once more", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.id != first.id
    turns = texts(upstream(gateway, raw))
    user, model_role = "user", ("model" if model.startswith("gemini") else "assistant")
    assert turns == [(user, "Say hello"), (model_role, EXPECTED), (user, "Once more")], turns
    # and a third turn carries both earlier ones
    raw, third = create(client, stream, model=model, input="Last", previous_response_id=second.id)
    assert [t for _, t in texts(upstream(gateway, raw))] == ["Say hello", EXPECTED, "Once more", EXPECTED, "Last"]
    # one usage record per request, as always
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record["endpoint"] == "responses" and record["model"] == model


def test_retrieve_and_input_items_show_what_was_stored(client):
    first = client.responses.create(model="claude-3-5-sonnet", input="Say hello")
    got = client.responses.retrieve(first.id)
    assert (got.id, got.status, got.output_text, got.store) == (first.id, "completed", EXPECTED, True)
    assert got.usage.output_tokens == first.usage.output_tokens
    items = client.responses.input_items.list(first.id)
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].role == "user" and items.data[0].content[0].text == "Say hello"
    assert items.data[0].id.startswith("msg_") and items.first_id == items.data[0].id

    second = client.responses.create(
        model="claude-3-5-sonnet",
        previous_response_id=first.id,
        input=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "user", "content": "c"}],
    )
    page = client.responses.input_items.list(second.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["a", "b"], "only this request's own input"
    assert page.has_more is True
    rest = client.responses.input_items.list(second.id, limit=2, order="asc", after=page.last_id)
    assert [i.content[0].text for i in rest.data] == ["c"] and rest.has_more is False
    newest_first = client.responses.input_items.list(second.id)
    assert [i.content[0].text for i in newest_first.data] == ["c", "b", "a"]


def test_another_key_sees_nothing_and_touches_nothing(client, second_tenant_client):
    mine = client.responses.create(model="gemini-1-5-pro", input="Say hello")
    with pytest.raises(openai.NotFoundError):
        second_tenant_client.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        second_tenant_client.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError) as caught:
        second_tenant_client.responses.create(model="gemini-1-5-pro", input="hi", previous_response_id=mine.id)
    assert caught.value.body["param"] == "previous_response_id"
    assert caught.value.body["code"] == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        second_tenant_client.responses.delete(mine.id)
    # still the owner's
    assert client.responses.retrieve(mine.id).output_text == EXPECTED


def test_delete_removes_it(client):
    gone = client.responses.create(model="gpt-4o", input="Say hello")
    assert client.responses.delete(gone.id) is None  # the SDK returns nothing on success
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(gone.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input="hi", previous_response_id=gone.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(gone.id)


def test_store_false_keeps_nothing(client):
    unstored = client.responses.create(model="claude-3-5-sonnet", input="Say hello", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="claude-3-5-sonnet", input="hi", previous_response_id=unstored.id)
    # continuing a stored response without storing the continuation: it still names it
    kept = client.responses.create(model="claude-3-5-sonnet", input="Say hello")
    loose = client.responses.create(model="claude-3-5-sonnet", input="more", previous_response_id=kept.id, store=False)
    assert (loose.store, loose.previous_response_id) == (False, kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(loose.id)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_stored_tool_loop_on_claude_keeps_its_signed_reasoning(gateway, client, stream):
    """The state a Responses client leaves to the server: only the tool output is sent back,
    and the provider still gets its own signed thinking first in the turn it continues."""
    kwargs = dict(model="claude-sonnet-4-5", tools=RESPONSES_TOOLS, reasoning={"effort": "high"})
    _, first = create(client, stream, input="What is the weather in Paris?", **kwargs)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls, first.output
    output = [{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}]
    raw, second = create(client, stream, input=output, previous_response_id=first.id, **kwargs)
    body = upstream(gateway, raw)
    assert body.get("thinking", {}).get("type") == "enabled", "thinking switched off"
    assert all(anthropic_turns_with_thinking(body)), body["messages"]
    assert second.output_text
    # a third turn asks again and gets its call, still with thinking
    raw, _ = create(client, stream, input="And in Rome?", previous_response_id=second.id, **kwargs)
    body = upstream(gateway, raw)
    assert body["thinking"]["type"] == "enabled"
    assert all(anthropic_turns_with_thinking(body))
