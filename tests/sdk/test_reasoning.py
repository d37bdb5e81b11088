"""Reasoning survives the tool loop: coding agents run multi-turn tool loops with reasoning on,
and the provider must get its own signed reasoning back, byte for byte, on the turn that
continues a tool call, or it either refuses (Gemini 3) or answers without thinking (Anthropic,
which the gateway would then have to switch off).

The emulator enforces the providers' documented rules: Anthropic's thinking blocks must come
back with a signature that verifies, and with thinking on, the assistant turn before a tool
result must start with one; Gemini 3 needs the thought signature on its function calls.

Each loop: turn 1 asks for the weather (the model calls the tool), turn 2 sends the result (the
model answers in text), turn 3 asks again (another call), turn 4 sends that result.
"""

from __future__ import annotations

import re

import pytest
import requests

from sdk_helpers import json_body, seq_of

CLAUDE = "claude-sonnet-4-5"
GEMINI_3 = "gemini-3-pro"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
RESPONSES_TOOLS = [{"type": "function", **TOOLS[0]["function"]}]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Current weather in a city", "input_schema": TOOLS[0]["function"]["parameters"]}
]
QUESTIONS = ["What is the weather in Paris?", "And in Rome?"]


def dropped_count(gateway) -> float:
    """`cheapai_reasoning_dropped_total` for the Claude model, from /metrics."""
    text = requests.get(f"{gateway.admin_url}/metrics", timeout=10).text
    found = re.search(r'^cheapai_reasoning_dropped_total\{model="claude-sonnet-4-5"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def upstream(gateway, raw) -> dict:
    return json_body(gateway.recorded(seq_of(raw.headers)))


def anthropic_turns_with_thinking(body: dict) -> list[list[dict]]:
    """The thinking blocks at the start of each assistant turn the provider received."""
    turns = []
    for m in body["messages"]:
        if m["role"] != "assistant" or not isinstance(m["content"], list):
            continue
        lead = []
        for block in m["content"]:
            if block["type"] not in ("thinking", "redacted_thinking"):
                break
            lead.append(block)
        turns.append(lead)
    return turns


# ---- OpenAI chat -----------------------------------------------------------------------------


def chat_loop(gateway, client, model: str, stream: bool, echo_whole_message: bool) -> list:
    """Runs the four turns; returns the raw answers."""
    messages: list[dict] = []
    raws = []
    for turn in range(4):
        if turn % 2 == 0:
            messages.append({"role": "user", "content": QUESTIONS[turn // 2]})
        kwargs = dict(model=model, messages=messages, tools=TOOLS, reasoning_effort="high")
        if stream:
            raw = client.chat.completions.with_raw_response.create(stream=True, **kwargs)
            content, calls = "", {}
            for chunk in raw.parse():
                for choice in chunk.choices:
                    content += choice.delta.content or ""
                    for call in choice.delta.tool_calls or []:
                        entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                        entry["id"] += call.id or ""
                        entry["name"] += (call.function.name or "") if call.function else ""
                        entry["arguments"] += (call.function.arguments or "") if call.function else ""
            # rebuilt from the deltas, as agent frameworks do: content and tool calls only
            message = {"role": "assistant", "content": content or None}
            if calls:
                message["tool_calls"] = [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in calls.values()
                ]
        else:
            raw = client.chat.completions.with_raw_response.create(**kwargs)
            reply = raw.parse().choices[0].message
            message = reply.model_dump(exclude_none=True) if echo_whole_message else {
                "role": "assistant", "content": reply.content,
                **({"tool_calls": [c.model_dump() for c in reply.tool_calls]} if reply.tool_calls else {}),
            }
        raws.append(raw)
        messages.append(message)
        for call in message.get("tool_calls") or []:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"})
    return raws


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_tool_loop_on_claude_keeps_thinking_on_every_turn(gateway, client, stream):
    raws = chat_loop(gateway, client, CLAUDE, stream, echo_whole_message=True)
    issued: list[list[dict]] = []
    for turn, raw in enumerate(raws):
        body = upstream(gateway, raw)
        assert body.get("thinking", {}).get("type") == "enabled", f"turn {turn + 1}: thinking switched off"
        sent = anthropic_turns_with_thinking(body)
        if turn % 2 == 1:
            # continuing a tool call: the calling turn starts with the thinking it was issued
            assert sent and sent[-1], f"turn {turn + 1}: the calling turn went back without its thinking"
        if not stream:
            # a client that sends messages back whole sends every turn's, unchanged
            assert all(sent) and sent[: len(issued)] == issued[: len(sent)], f"turn {turn + 1}: {sent}"
            issued = sent


def test_chat_json_answers_carry_the_signed_thinking(gateway, client):
    reply = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": QUESTIONS[0]}], tools=TOOLS, reasoning_effort="high"
    ).choices[0].message
    extra = reply.model_dump()
    blocks = extra.get("thinking_blocks")
    assert blocks and blocks[0]["type"] == "thinking" and blocks[0]["signature"], extra
    assert extra.get("reasoning_content") == blocks[0]["thinking"]


def test_a_chat_client_that_drops_the_thinking_gets_it_back_from_the_gateway(gateway, client):
    before = dropped_count(gateway)
    raws = chat_loop(gateway, client, CLAUDE, stream=False, echo_whole_message=False)
    for turn, raw in enumerate(raws):
        body = upstream(gateway, raw)
        assert body.get("thinking", {}).get("type") == "enabled", f"turn {turn + 1}"
        if turn % 2 == 1:
            assert anthropic_turns_with_thinking(body)[-1], f"turn {turn + 1}: not restored"
    assert dropped_count(gateway) == before, "nothing was lost"
    last = gateway.ledger.record_of(raws[-1].headers["x-request-id"])
    assert "reasoning_dropped" not in last, last


def test_kept_thinking_is_never_given_to_another_key(gateway, client, second_tenant_client):
    """A key that replays another key's tool call ids gets no reasoning from it: the turn goes
    on with thinking off, as for a client that dropped it."""
    first = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": QUESTIONS[0]}], tools=TOOLS, reasoning_effort="high"
    ).choices[0].message
    call = first.tool_calls[0]
    replay = [
        {"role": "user", "content": QUESTIONS[0]},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    before = dropped_count(gateway)
    raw = second_tenant_client.chat.completions.with_raw_response.create(
        model=CLAUDE, messages=replay, tools=TOOLS, reasoning_effort="high"
    )
    body = upstream(gateway, raw)
    assert "thinking" not in body, "another key's reasoning was used"
    assert anthropic_turns_with_thinking(body) == [[]]
    # the turn went on as before this feature, and the metric says reasoning was lost
    assert raw.parse().choices[0].message.content
    assert dropped_count(gateway) == before + 1
    # and so does the turn's usage record
    record = gateway.ledger.record_of(raw.headers["x-request-id"])
    assert record.get("reasoning_dropped") is True, record


# ---- Responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_responses_tool_loop_on_claude_round_trips_encrypted_reasoning(gateway, client, stream):
    """Codex-shaped: store false, encrypted reasoning included, output items echoed back."""
    items: list[dict] = []
    issued: list[list[dict]] = []
    for turn in range(4):
        if turn % 2 == 0:
            items.append({"role": "user", "content": QUESTIONS[turn // 2]})
        kwargs = dict(
            model=CLAUDE, input=items, tools=RESPONSES_TOOLS, reasoning={"effort": "high", "summary": "auto"},
            store=False, include=["reasoning.encrypted_content"],
        )
        if stream:
            raw = client.responses.with_raw_response.create(stream=True, **kwargs)
            done = [e for e in raw.parse() if e.type == "response.completed"]
            assert done, "no response.completed"
            output = done[0].response.output
        else:
            raw = client.responses.with_raw_response.create(**kwargs)
            output = raw.parse().output
        body = upstream(gateway, raw)
        assert body.get("thinking", {}).get("type") == "enabled", f"turn {turn + 1}: thinking switched off"
        sent = anthropic_turns_with_thinking(body)
        assert all(sent) and sent[: len(issued)] == issued[: len(sent)], f"turn {turn + 1}: {sent}"
        issued = sent
        reasoning = [o for o in output if o.type == "reasoning"]
        assert reasoning and reasoning[0].encrypted_content, f"turn {turn + 1}: no encrypted reasoning item"
        assert reasoning[0].encrypted_content.startswith("cai1.")
        assert reasoning[0].content and reasoning[0].content[0].text.startswith("Thinking about")
        items.extend(o.model_dump(exclude_none=True) for o in output)
        for o in output:
            if o.type == "function_call":
                items.append({"type": "function_call_output", "call_id": o.call_id, "output": "sunny, 21 C"})


# ---- Gemini 3: thought signatures on function calls --------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_tool_loop_on_gemini_3_returns_the_thought_signature(gateway, client, stream):
    raws = chat_loop(gateway, client, GEMINI_3, stream, echo_whole_message=False)
    for turn, raw in enumerate(raws):
        body = upstream(gateway, raw)
        assert body["generationConfig"]["thinkingConfig"], f"turn {turn + 1}"
        calls = [p for c in body["contents"] if c["role"] == "model" for p in c["parts"] if "functionCall" in p]
        assert all(p.get("thoughtSignature") for p in calls), f"turn {turn + 1}: {calls}"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_client_thinking_on_gemini_3_maps_and_round_trips(gateway, anthropic_client, stream):
    messages: list[dict] = []
    for turn in range(4):
        if turn % 2 == 0:
            messages.append({"role": "user", "content": QUESTIONS[turn // 2]})
        kwargs = dict(
            model=GEMINI_3, max_tokens=4096, messages=messages, tools=ANTHROPIC_TOOLS,
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
        if stream:
            with anthropic_client.messages.stream(**kwargs) as s:
                msg = s.get_final_message()
                seq = s.response.headers["x-emulator-seq"]
        else:
            raw = anthropic_client.messages.with_raw_response.create(**kwargs)
            msg, seq = raw.parse(), raw.headers["x-emulator-seq"]
        body = json_body(gateway.recorded(seq))
        # budget 2,048 → low → Gemini's 1,024 (docs/translation.md D1)
        assert body["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 1024, body["generationConfig"]
        thinking = [b for b in msg.content if b.type == "thinking"]
        assert thinking and thinking[0].thinking.startswith("Thinking about"), msg.content
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]})
        calls = [b for b in msg.content if b.type == "tool_use"]
        if calls:
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": c.id, "content": "sunny, 21 C"} for c in calls]})
