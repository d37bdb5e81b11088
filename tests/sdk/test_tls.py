"""The official clients over HTTPS: a gateway whose listener serves TLS with a certificate from
a private CA (`[server] tls`), reached by the OpenAI and Anthropic SDKs trusting that CA, over
HTTP/1.1 and HTTP/2 (the SDKs' HTTP client with h2), JSON and streams, and by Claude Code (Node, trusting the CA
through NODE_EXTRA_CA_CERTS)."""

from __future__ import annotations

import dataclasses
import secrets
import ssl
import subprocess
from pathlib import Path

import httpx2
import pytest

from conftest import _gateway_bin, _running, free_ports, gateway_env, render_config
from test_claude_code import bare_env, run_claude

EXPECTED = "Hello world1 world2 world3 world4"


@dataclasses.dataclass
class TlsGateway:
    root_url: str  # https://localhost:PORT
    key: str
    ca_file: Path


def openssl(cwd: Path, *args: str) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def make_certificates(d: Path) -> None:
    """A private CA (ca.pem) and a server certificate for localhost (tls.crt, tls.key)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
    (d / "leaf.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    openssl(d, "req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost")
    openssl(d, "x509", "-req", "-in", "tls.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "tls.crt", "-days", "2", "-extfile", "leaf.cnf")


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls-gateway")
    make_certificates(tmp)
    key, other_key = "cai-" + secrets.token_hex(24), "cai-" + secrets.token_hex(24)
    port, admin_port, emu_port = free_ports(3)
    config = render_config(port, admin_port, emu_port, key, other_key, tmp / "ledger")
    tls = f'tls = {{ cert_file = "{tmp / "tls.crt"}", key_file = "{tmp / "tls.key"}" }}\n'
    config = config.replace("[server]\n", "[server]\n" + tls, 1)
    config_path = tmp / "gateway.toml"
    config_path.write_text(config)
    env = gateway_env("admin-" + secrets.token_hex(8))
    with _running(_gateway_bin(), config_path, env, tmp, tmp / "gateway.log", [port, admin_port, emu_port]):
        yield TlsGateway(root_url=f"https://localhost:{port}", key=key, ca_file=tmp / "ca.pem")


def http_client(gw: TlsGateway, http2: bool) -> httpx2.Client:
    """The SDKs' own HTTP client, trusting the test CA, over HTTP/2 when asked."""
    trust = ssl.create_default_context(cafile=str(gw.ca_file))
    return httpx2.Client(verify=trust, http2=http2, timeout=30)


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_openai_sdk_over_https(tls_gateway, http2):
    from openai import OpenAI

    with http_client(tls_gateway, http2) as http:
        client = OpenAI(base_url=f"{tls_gateway.root_url}/v1", api_key=tls_gateway.key, http_client=http, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.http_response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert raw.parse().choices[0].message.content == EXPECTED
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="claude-3-5-sonnet", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            if c.choices
        )
        assert text == EXPECTED
        with client.responses.stream(model="gemini-1-5-pro", input="hi") as stream:
            assert stream.get_final_response().output_text == EXPECTED


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_anthropic_sdk_over_https(tls_gateway, http2):
    from anthropic import Anthropic

    with http_client(tls_gateway, http2) as http:
        client = Anthropic(base_url=tls_gateway.root_url, api_key=tls_gateway.key, http_client=http, max_retries=0)
        raw = client.messages.with_raw_response.create(
            model="claude-3-5-sonnet", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.http_response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert raw.parse().content[0].text == EXPECTED
        with client.messages.stream(
            model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            assert stream.get_final_text() == EXPECTED


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_gateway):
    with httpx2.Client(timeout=10) as http:
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            http.get(f"{tls_gateway.root_url}/")


def test_claude_code_over_https(tls_gateway, tmp_path):
    env = bare_env(
        tmp_path,
        tls_gateway.root_url,
        tls_gateway.key,
        NODE_EXTRA_CA_CERTS=str(tls_gateway.ca_file),
        ANTHROPIC_MODEL="claude-3-5-sonnet",
        ANTHROPIC_SMALL_FAST_MODEL="claude-3-5-sonnet",
    )
    done = run_claude(env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == EXPECTED, done.stdout + done.stderr
