"""The load bench's TLS set-up: a private CA and a certificate for the provider's TLS front
and the client listeners, nginx's server blocks for the TLS targets, and the gateway config
lines that reach a provider over HTTPS.

The TLS targets (each only when named in TARGETS):
- `direct-tls`: wrk to the emulator's HTTPS port itself;
- `nginx-tls`: nginx, plain to the client, verified TLS with keep-alive to the provider;
- `gateway-tls`: the gateway, plain to the client, HTTP/1.1 over TLS to the provider;
- `gateway-h2`: the same with `http2 = true` (streams multiplexed over HTTP/2);
- `nginx-edge`, `gateway-edge`: TLS on both sides (the gateway with HTTP/2 to the provider),
  what an edge deployment runs.
"""
import os
import socket
import ssl
import subprocess

# Every TLS target, in the order they are measured.
TARGETS = ["direct-tls", "nginx-tls", "gateway-tls", "gateway-h2", "nginx-edge", "gateway-edge"]
# The targets wrk reaches over HTTPS.
CLIENT_TLS = {"direct-tls", "nginx-edge", "gateway-edge"}
# The provider's TLS front is a certificate for this name (and for 127.0.0.1).
NAME = "localhost"


def make_certs(work):
    """A private CA and one certificate for 127.0.0.1 and `NAME`, signed by it, with openssl:
    (ca, cert, key) file paths."""
    ca_key, ca = os.path.join(work, "ca.key"), os.path.join(work, "ca.pem")
    key, csr, cert = (os.path.join(work, n) for n in ("tls.key", "tls.csr", "tls.pem"))
    ext = os.path.join(work, "tls.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName = IP:127.0.0.1, DNS:{NAME}\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=cheapai bench CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={NAME}")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


def nginx_servers(ports, emu_tls, ca, cert, key):
    """nginx's upstream and server blocks for `nginx-tls` and `nginx-edge` (those in `ports`):
    verified TLS to the provider (its CA, its name), sessions reused, 256 keep-alive
    connections, as an operator would configure it."""
    if not ports:
        return ""
    proxy = f"""
            proxy_pass https://emu_tls;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_name {NAME};
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;"""
    out = f"    upstream emu_tls {{ server 127.0.0.1:{emu_tls}; keepalive 256; }}\n"
    if "nginx-tls" in ports:
        out += f"""    server {{
        listen 127.0.0.1:{ports['nginx-tls']} reuseport;
        location / {{{proxy}
        }}
    }}
"""
    if "nginx-edge" in ports:
        out += f"""    server {{
        listen 127.0.0.1:{ports['nginx-edge']} ssl reuseport;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{{proxy}
        }}
    }}
"""
    return out


def gateway_setup(target, emu_tls, ca, cert, key):
    """(provider base URL, provider lines, [server] lines) of a gateway TLS target."""
    http2 = "false" if target == "gateway-tls" else "true"
    provider = f'ca_file = "{ca}"\nhttp2 = {http2}\n'
    server = (f'tls = {{ cert_file = "{cert}", key_file = "{key}" }}\n'
              if target == "gateway-edge" else "")
    return f"https://{NAME}:{emu_tls}/v1", provider, server


def scheme(target):
    return "https" if target in CLIENT_TLS else "http"


def connect(target, target_port):
    """A client socket to the target, over TLS where wrk speaks it (certificates unchecked, as
    wrk does)."""
    sock = socket.create_connection(("127.0.0.1", target_port), timeout=10)
    if target not in CLIENT_TLS:
        return sock
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock, server_hostname=NAME)


def ratios(load, mean):
    """The TLS targets' ratio lines for one workload; `mean(target, load, key)` is nan for a
    target not measured."""
    out = []
    n, d = mean("nginx-tls", load, "rps"), mean("direct-tls", load, "rps")
    nc = mean("nginx-tls", load, "cpu")
    parts = []
    for t in ("gateway-tls", "gateway-h2"):
        g, gc = mean(t, load, "rps"), mean(t, load, "cpu")
        parts.append(f"{t}/nginx-tls = {g / n:.2f}x (cpu/req {gc / nc:.1f}x)")
    out.append(f"tls   {load:<7} provider over TLS: " + "  ".join(parts)
               + f"  nginx-tls/direct-tls = {n / d:.2f}x")
    e, ne = mean("gateway-edge", load, "rps"), mean("nginx-edge", load, "rps")
    plain = mean("gateway", load, "rps") / mean("nginx", load, "rps")
    ec, nec = mean("gateway-edge", load, "cpu"), mean("nginx-edge", load, "cpu")
    out.append(f"tls   {load:<7} TLS both sides: gateway-edge/nginx-edge = {e / ne:.2f}x "
               f"(cpu/req {ec / nec:.1f}x); plain HTTP gateway/nginx = {plain:.2f}x")
    return out
