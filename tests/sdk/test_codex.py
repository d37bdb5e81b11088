"""Codex CLI itself (the official CLI from npm) against the gateway through a custom model
provider with `wire_api = "responses"`: on a GPT, a Claude and a Gemini model, and with no
model set on the repository's default config. Every Codex turn here includes a tool round
trip: the emulator answers Codex's first request with a call to its first tool
(`exec_command`), Codex runs it and sends the output back, and the emulator then answers
with text."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from sdk_helpers import json_body

EXPECTED = "Hello world1 world2 world3 world4"


def codex_bin() -> Path:
    path = os.environ.get("CODEX_BIN", "")
    if not path or not Path(path).is_file():
        pytest.fail("CODEX_BIN is not set to the codex CLI (scripts/test installs it from npm)")
    return Path(path)


def run_codex(
    tmp_path: Path, base_url: str, key: str, model: str | None, effort: str | None = None
) -> subprocess.CompletedProcess:
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    model_line = f'model = "{model}"\n' if model else ""
    effort_line = f'model_reasoning_effort = "{effort}"\n' if effort else ""
    (home / "config.toml").write_text(
        model_line
        + effort_line
        + 'model_provider = "cheapai"\n\n'
        + "[model_providers.cheapai]\n"
        + 'name = "cheapai"\n'
        + f'base_url = "{base_url}"\n'
        + 'env_key = "CHEAPAI_API_KEY"\n'
        + 'wire_api = "responses"\n'
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CODEX_HOME": str(home),
        "CHEAPAI_API_KEY": key,
    }
    return subprocess.run(
        [str(codex_bin()), "exec", "--skip-git-repo-check", "say hi"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def responses_records(records: list[dict], started_ms: int) -> list[dict]:
    return [r for r in records if r["timestamp_ms"] >= started_ms and r["endpoint"] == "responses"]


def settled(read, started_ms: int) -> list[dict]:
    seen, deadline = None, time.monotonic() + 5
    while time.monotonic() < deadline:
        records = responses_records(read(), started_ms)
        if records and records == seen:
            return records
        seen = records
        time.sleep(0.2)
    return seen or []


@pytest.mark.parametrize("model", ["gpt-native", "gpt-4o", "claude-3-5-sonnet", "gemini-1-5-pro"])
def test_codex_exec_with_a_tool_round_trip(gateway, tmp_path, model):
    started_ms = int(time.time() * 1000)
    done = run_codex(tmp_path, gateway.base_url, gateway.key, model)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(EXPECTED), done.stdout + done.stderr
    assert "exec_command" in done.stderr or "Paris" in done.stderr, done.stderr

    records = settled(gateway.ledger.records, started_ms)
    assert len(records) >= 2, "the tool call, then the answer after its output"
    for r in records:
        assert r["model"] == model and r["status"] == 200, r
        assert r["estimated"] is False, r


def test_codex_on_claude_with_reasoning_keeps_thinking_through_the_tool_round_trip(gateway, tmp_path):
    """Codex with a reasoning effort on a Claude model: the turn after the tool output still
    has thinking on, and its calling turn carries the signed thinking Codex got back sealed in
    a reasoning item's encrypted_content (the emulator verifies the signature)."""
    started_ms = int(time.time() * 1000)
    done = run_codex(tmp_path, gateway.base_url, gateway.key, "claude-sonnet-4-5", effort="high")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(EXPECTED), done.stdout + done.stderr
    records = settled(gateway.ledger.records, started_ms)
    assert len(records) >= 2, "the tool call, then the answer after its output"

    last = json_body(gateway.recorded("last"))
    assert last.get("thinking", {}).get("type") == "enabled", "thinking was switched off after the tool call"
    calling = [m for m in last["messages"] if m["role"] == "assistant"][-1]
    assert isinstance(calling["content"], list) and calling["content"][0]["type"] == "thinking", calling
    assert calling["content"][0]["signature"], calling


def test_codex_with_no_model_on_the_default_config(default_gateway, tmp_path):
    started_ms = int(time.time() * 1000)
    done = run_codex(tmp_path, default_gateway.root_url + "/v1", default_gateway.key, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(EXPECTED), done.stdout + done.stderr
    records = settled(default_gateway.records, started_ms)
    assert len(records) >= 2
    for r in records:
        assert r["model"].startswith("gpt-"), r
        assert r["cost_micro_usd"] > 0, r
