#!/usr/bin/env python3
"""The gateway's memory for its tokenizers, step by step.

    python3 benches/tokenizer_memory.py target/release/cheapai-gateway [another build ...]

Runs each build with the default config (conf/gateway.toml, its listeners moved to free
ports), then makes, in order, every request that needs the gateway's own token count: a
count_tokens on a translated model, a gpt-4o stream its client cuts, a Gemini embedding, a
cut gpt-4 stream (cl100k), a cut Claude stream. Prints RSS (once settled) and peak
RSS (VmHWM) after each step.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

from proc_probe import cut_stream, port, rss_kb, settled_rss_kb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "cai-demo-local-only-0001"  # the default config's demo key


def config(work):
    """The default config with every listener on a free port: (path, API port, admin port)."""
    text = open(os.path.join(ROOT, "conf", "gateway.toml")).read()
    listen = re.search(r'^listen = "[^:]+:(\d+)"', text, re.M).group(1)
    admin = re.search(r'^admin_listen = "[^:]+:(\d+)"', text, re.M).group(1)
    ports = {}
    for old in sorted(set(re.findall(r"(?:0\.0\.0\.0|127\.0\.0\.1):(\d+)", text))):
        ports[old] = port()
        text = re.sub(r"(0\.0\.0\.0|127\.0\.0\.1):" + old + r"\b", f"127.0.0.1:{ports[old]}", text)
    path = os.path.join(work, "gateway.toml")
    with open(path, "w") as f:
        f.write(text)
    return path, ports[listen], ports[admin]


def measure(binary, work):
    path, listen, admin = config(work)
    proc = subprocess.Popen([binary, "run", "--config", path], cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"{binary} never became ready")
                time.sleep(0.05)

        def mb():
            rss, peak = settled_rss_kb([proc.pid]) / 1024, rss_kb([proc.pid], "VmHWM") / 1024
            return f"RSS {rss:6.1f} MB  peak {peak:6.1f} MB"

        def post(path, body):
            req = urllib.request.Request(
                f"http://127.0.0.1:{listen}{path}", json.dumps(body).encode(),
                {"authorization": f"Bearer {KEY}", "content-type": "application/json",
                 "anthropic-version": "2023-06-01"})
            urllib.request.urlopen(req, timeout=30).read()

        print(binary)
        print(f"  {'idle':<28}{mb()}")
        steps = [
            ("count_tokens, gpt-4o", lambda: post("/v1/messages/count_tokens", {
                "model": "gpt-4o", "messages": [{"role": "user", "content": "hello there"}]})),
            ("cut gpt-4o stream", lambda: cut_stream(listen, KEY, "gpt-4o")),
            ("Gemini embedding", lambda: post("/v1/embeddings", {
                "model": "text-embedding-004", "input": ["hello world"]})),
            ("cut gpt-4 stream", lambda: cut_stream(listen, KEY, "gpt-4")),
            ("cut Claude stream", lambda: cut_stream(listen, KEY, "claude-opus-4-8")),
        ]
        for name, step in steps:
            step()
            print(f"  {name:<28}{mb()}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as work:
        for binary in sys.argv[1:]:
            measure(os.path.abspath(binary), work)
