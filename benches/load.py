#!/usr/bin/env python3
"""Load bench driver (run through benches/load.sh, which installs tools and builds first).

Everything is measured in one run, interleaved round by round, so that ratios survive a noisy
shared machine: the provider emulator directly, nginx as the reference proxy hop (plain
`proxy_pass`, upstream keep-alive, no buffering), a bare Pingora hop (the second argument:
what Pingora alone costs), and the gateway in several set-ups, one of them (`ledger`) with
its usage ledger in a PostgreSQL server the bench starts itself. For each
(target, workload) it prints RPS, p50/p99 latency and CPU milliseconds per request (utime+stime
of the target's processes from /proc/<pid>/stat); then the ratios, concurrency-1 latency, the
gateway's syscalls per request (strace -c, a short separate pass), peak RSS, and the memory and
added time of many slow concurrent streams. For the gateways with a ledger (`gateway`: SQLite,
`ledger`: PostgreSQL) it also prints what the shipper delivered during each measurement, the
highest lag seen, how long it took to catch up, and, after the load, the `ledger` target's
rows in PostgreSQL against the requests wrk completed.

Environment: DURATION (s per measurement, 8), ROUNDS (2), CONNECTIONS (64), SLOW_STREAMS (2000),
TARGETS (space-separated subset; `ledger` starts PostgreSQL, a few seconds; the TLS targets,
benches/bench_tls.py, a provider behind a TLS front and TLS to the client), LOADS (chat stream
embed), PHASES (load latency strace slow),
KEEP_WORK (1: keep the work directory with every server's log and config),
COMPARE ("name=/path/to/binary ...": more gateways, in-memory state, each run from its own
binary, e.g. builds of earlier commits, so that each change is measured alone in one run;
their configs get no [usage] spool, which builds before the usage ledger do not know, unless
COMPARE_LEDGER=1).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import bench_tls
from bench_postgres import Postgres
from ledger_probe import ShipSampler, wait_shipped
from ledger_report import LedgerReport
from proc_probe import TICK_MS, cut_stream, port, rss_kb, settled_rss_kb, thread_cpu_ms

BIN = sys.argv[1]
# A bare Pingora hop (benches/bare_pingora.rs): what Pingora alone costs.
PINGORA = sys.argv[2] if len(sys.argv) > 2 else None
# The provider emulator's own binary (crates/emulator), every target's upstream.
EMULATOR_BIN = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(BIN), "cheapai-emulator")
DURATION = int(os.environ.get("DURATION", "8"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
SLOW_STREAMS = int(os.environ.get("SLOW_STREAMS", "2000"))
TARGETS = os.environ.get("TARGETS", "direct nginx pingora gateway ledger redis limited balanced "
                         + " ".join(bench_tls.TARGETS)).split()
LOADS = os.environ.get("LOADS", "chat stream embed").split()
PHASES = os.environ.get("PHASES", "load latency strace slow").split()
KEY = "cai-bench-key-0001"
# The variable the `ledger` target's config names for its PostgreSQL URL.
LEDGER_URL_ENV = "CHEAPAI_BENCH_LEDGER_URL"
# The load generator gets core 1; the servers share both cores (as they would in production
# with a co-located client they do not control).
WRK = ["taskset", "-c", "1", "wrk", "-t1"]

work = tempfile.mkdtemp(prefix="cheapai-bench-")
procs = []
# the `ledger` target's PostgreSQL server, when that target runs
postgres = []


def spawn(args, log, extra_env=None):
    env = dict(os.environ, RUST_LOG="warn", **(extra_env or {}))
    p = subprocess.Popen(args, stdout=open(os.path.join(work, log), "w"),
                         stderr=subprocess.STDOUT, env=env)
    procs.append(p)
    return p


def wait_port(p):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {p}; logs in {work}")


def family(pid):
    """The pid and its children (nginx's workers)."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def cpu_ms(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total * TICK_MS


def wrk(url, script, connections, duration, threads=None):
    args = list(WRK) if threads is None else ["wrk", f"-t{threads}"]
    args += [f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url]
    t = subprocess.run(args, capture_output=True, text=True).stdout

    def ms(label):
        m = re.search(r"^\s*" + label + r"%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
        if not m:
            return float("nan")
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v

    total = re.search(r"(\d+) requests in", t)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", t)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    errs = re.search(r"Socket errors: (.*)", t)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50": ms("50"), "p99": ms("99"),
        "non2xx": int(bad.group(1)) if bad else 0,
        "errors": errs.group(1) if errs else "",
    }


def lua(name, body, extra=""):
    path = os.path.join(work, name + ".lua")
    with open(path, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer {KEY}"
{extra}
""")
    return path


def main():
    emu, ngx, redis = port(), port(), port()
    key_hash = subprocess.run([BIN, "hash-key", KEY], capture_output=True, text=True,
                              check=True).stdout.strip()

    def gateway_conf(name, extra_model="", extra="", ledger="sqlite",
                     upstream=None, provider_extra="", server_extra=""):
        gw, admin = port(), port()
        upstream = upstream or f"http://127.0.0.1:{emu}/v1"
        admins[name] = admin
        model = extra_model or 'provider = "emu"'
        path = os.path.join(work, name + ".toml")
        # each gateway its own usage spool and SQLite ledger (a spool is one process's), or
        # the `ledger` target's PostgreSQL; builds from before the ledger (COMPARE,
        # ledger=None) know no [usage] spool
        if ledger:
            store = (f'store = "sqlite:{os.path.join(work, name + ".db")}"' if ledger == "sqlite"
                     else f'postgres_url_env = "{LEDGER_URL_ENV}"')
            extra += f'\n[usage]\nspool_dir = "{os.path.join(work, name + "-spool")}"\n{store}\n'
        with open(path, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{gw}"
admin_listen = "127.0.0.1:{admin}"
threads = 2
grace_period_seconds = 1
{server_extra}[providers.emu]
kind = "openai_compatible"
base_url = "{upstream}"
{provider_extra}[providers.emu-b]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{emu}/v1"
[models."gpt-4o"]
{model}
[models."text-embedding-3-small"]
provider = "emu"
[models."gpt-4"]
provider = "emu"
[[keys]]
name = "bench"
sha256 = "{key_hash}"
{extra}""")
        return gw, path

    state = f'[state]\nredis_url = "redis://127.0.0.1:{redis}/0"\n'
    compare = dict(c.split("=", 1) for c in os.environ.get("COMPARE", "").split())
    admins = {}
    confs = {
        "gateway": gateway_conf("gateway"),
        "ledger": gateway_conf("ledger", ledger="postgres"),
        "redis": gateway_conf("redis", extra=state),
        "limited": gateway_conf("limited", extra="limits = { rpm = 100000000, tpm = 100000000000 }\n" + state),
        "balanced": gateway_conf("balanced", extra_model='deployments = [{ provider = "emu", weight = 1 }, { provider = "emu-b", weight = 3 }]'),
    }

    tls_targets = [t for t in bench_tls.TARGETS if t in TARGETS]
    emu_tls, tls_files = None, None
    if tls_targets:
        emu_tls, tls_files = port(), bench_tls.make_certs(work)
        for t in tls_targets:
            if t.startswith("gateway-"):
                upstream, provider_extra, server_extra = bench_tls.gateway_setup(t, emu_tls, *tls_files)
                confs[t] = gateway_conf(t, upstream=upstream, provider_extra=provider_extra,
                                        server_extra=server_extra)
    nginx_tls = {t: port() for t in tls_targets if t.startswith("nginx-")}

    spawn(["redis-server", "--port", str(redis), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no"], "redis.log")
    emulator_tls = (["--tls-listen", f"127.0.0.1:{emu_tls}", "--tls-cert", tls_files[1],
                     "--tls-key", tls_files[2]] if emu_tls else [])
    emulator = spawn([EMULATOR_BIN, "--listen", f"127.0.0.1:{emu}", "--threads", "2", *emulator_tls],
                     "emu.log")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(work, "nginx", d), exist_ok=True)
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx/body;
    proxy_temp_path {work}/nginx/proxy;
    fastcgi_temp_path {work}/nginx/fastcgi;
    uwsgi_temp_path {work}/nginx/uwsgi;
    scgi_temp_path {work}/nginx/scgi;
    upstream emu {{ server 127.0.0.1:{emu}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{ngx} reuseport;
        location / {{
            proxy_pass http://emu;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
{bench_tls.nginx_servers(nginx_tls, emu_tls, *(tls_files or ("", "", "")))}}}
""")
    nginx = spawn(["nginx", "-p", work, "-c", os.path.join(work, "nginx.conf"), "-g",
                   "daemon off;"], "nginx.log")
    servers = {"direct": (emu, emulator), "nginx": (ngx, nginx)}
    if "direct-tls" in tls_targets:
        servers["direct-tls"] = (emu_tls, emulator)
    servers.update({t: (p, nginx) for t, p in nginx_tls.items()})
    if PINGORA and "pingora" in TARGETS:
        hop = port()
        servers["pingora"] = (hop, spawn([PINGORA, f"127.0.0.1:{hop}", f"127.0.0.1:{emu}", "2"], "pingora.log"))
    ledger_env = {}
    if "ledger" in TARGETS:
        postgres.append(Postgres(work))
        print(f"ledger: PostgreSQL initdb and start took {postgres[0].start():.1f} s "
              f"(fsync on, synchronous commit)")
        ledger_env[LEDGER_URL_ENV] = postgres[0].url()
    else:
        del confs["ledger"]
    for name, (gw, path) in confs.items():
        servers[name] = (gw, spawn([BIN, "run", "--config", path], name + ".log",
                                   ledger_env if name == "ledger" else None))
    for name, binary in compare.items():
        gw, path = gateway_conf(name, ledger="sqlite" if os.environ.get("COMPARE_LEDGER") == "1" else None)
        servers[name] = (gw, spawn([binary, "run", "--config", path], name + ".log"))
        TARGETS.append(name)
    for p, _ in servers.values():
        wait_port(p)
    if emu_tls:
        wait_port(emu_tls)
    wait_port(redis)
    targets = [t for t in TARGETS if t in servers]

    scripts = {
        "chat": ("/v1/chat/completions", lua("chat", '{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}]}')),
        "stream": ("/v1/chat/completions", lua("stream", '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hello"}]}',
                                               'wrk.headers["x-emulator-chunks"] = "20"')),
        "embed": ("/v1/embeddings", lua("embed", '{"model":"text-embedding-3-small","dimensions":1536,"input":"The food was delicious and the waiter was friendly."}')),
    }
    url = lambda t, path: f"{bench_tls.scheme(t)}://127.0.0.1:{servers[t][0]}{path}"
    pg_pids = lambda: family(postgres[0].proc.pid)
    # the `ledger` target's CPU is the gateway's and its PostgreSQL server's
    pids = lambda t: family(servers[t][1].pid) + (pg_pids() if t == "ledger" else [])
    # gateways whose shipping is watched during each measurement
    shipping = [t for t in ("gateway", "ledger") if t in targets]
    report = LedgerReport()
    rows_sql = "SELECT count(*), count(*) FILTER (WHERE flags & 2 = 0) FROM ledger_records"
    ledger_rows = lambda: tuple(int(x) for x in postgres[0].psql("ledger", rows_sql).split("|"))

    results = {}
    # measurements with a request that was not answered 2xx (a broken set-up, not a slow one)
    failed = []
    if "gateway" in servers:
        # The gateway builds the tokenizers its catalog needs as it starts. The estimate of a
        # cut stream waits for its table, so these two wait until both are built: every
        # run's peak then includes them, and none is built under the load.
        cut_stream(servers["gateway"][0], KEY, "gpt-4o")
        cut_stream(servers["gateway"][0], KEY, "gpt-4")
        print(f"gateway RSS idle, with its o200k and cl100k tokenizers: {settled_rss_kb([servers['gateway'][1].pid]) / 1024:.1f} MB")
    if "ledger" in targets:
        wait_shipped(admins["ledger"])
        rows_before = ledger_rows()
    if "load" in PHASES:
        print(f"# {DURATION} s per measurement, {CONNECTIONS} connections, wrk -t1 on core 1, {ROUNDS} rounds")
        print(f"{'round':<6}{'load':<8}{'target':<10}{'rps':>9}{'p50_ms':>9}{'p99_ms':>9}{'cpu_ms/req':>12}{'non2xx':>8}")
        for rnd in range(1, ROUNDS + 1):
            for load in LOADS:
                path, script = scripts[load]
                for t in targets:
                    before = cpu_ms(pids(t))
                    pg_before = cpu_ms(pg_pids()) if t == "ledger" else None
                    # where a gateway with a ledger, and one from before it, spend their CPU
                    by_thread = thread_cpu_ms(servers[t][1].pid) if t in shipping or t in compare else None
                    if t in shipping:
                        with ShipSampler(admins[t]) as ship:
                            r = wrk(url(t, path), script, CONNECTIONS, DURATION)
                            ship.wrk_ended()
                            # the shipper's work for these requests is theirs (and must not
                            # land on the next target's measurement)
                            ship.caught_up = wait_shipped(admins[t])
                    else:
                        r = wrk(url(t, path), script, CONNECTIONS, DURATION)
                    r["cpu"] = (cpu_ms(pids(t)) - before) / max(1, r["requests"])
                    if r["requests"] == 0 or r["non2xx"]:
                        failed.append(f"{t} {load}: {r['requests']} requests, {r['non2xx']} not 2xx")
                    acc = results.setdefault((t, load), {"rps": 0.0, "cpu": 0.0, "n": 0})
                    acc["rps"] += r["rps"]
                    acc["cpu"] += r["cpu"]
                    acc["n"] += 1
                    print(f"{rnd:<6}{load:<8}{t:<10}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
                          f"{r['cpu']:>12.4f}{r['non2xx']:>8} {r['errors']}", flush=True)
                    if t in shipping:
                        pg_cpu = cpu_ms(pg_pids()) - pg_before if t == "ledger" else None
                        print(report.measured(t, load, r, ship, pg_cpu), flush=True)
                    if by_thread is not None:
                        print(report.by_thread(t, thread_cpu_ms(servers[t][1].pid), by_thread,
                                               r["requests"]), flush=True)
        print()
        mean = lambda t, l, k: results[(t, l)][k] / results[(t, l)]["n"] if (t, l) in results else float("nan")
        for load in LOADS:
            n, d = mean("nginx", load, "rps"), mean("direct", load, "rps")
            for name in compare:
                c, cc = mean(name, load, "rps"), mean(name, load, "cpu")
                print(f"ratio {load:<7} {name}/nginx = {c / n:.2f}x  {name}/direct = {c / d:.2f}x  "
                      f"cpu/req {cc:.4f} ms = {cc / mean('nginx', load, 'cpu'):.1f}x nginx")
            g = mean("gateway", load, "rps")
            gc, nc = mean("gateway", load, "cpu"), mean("nginx", load, "cpu")
            print(f"ratio {load:<7} gateway/nginx = {g / n:.2f}x  gateway/direct = {g / d:.2f}x  "
                  f"nginx/direct = {n / d:.2f}x  cpu/req gateway {gc:.4f} ms, nginx {nc:.4f} ms = {gc / nc:.1f}x")
            if (("pingora", load)) in results:
                b, bc = mean("pingora", load, "rps"), mean("pingora", load, "cpu")
                print(f"      {load:<7} pingora/nginx = {b / n:.2f}x  gateway/pingora = {g / b:.2f}x  "
                      f"cpu/req pingora {bc:.4f} ms = {bc / nc:.1f}x nginx")
            extra = []
            if "redis" in targets and "limited" in targets:
                extra.append(f"limits-on/limits-off = {mean('limited', load, 'rps') / mean('redis', load, 'rps'):.2f}x")
            if "balanced" in targets:
                extra.append(f"balanced/gateway = {mean('balanced', load, 'rps') / g:.2f}x")
            if extra:
                print(f"      {load:<7} " + "  ".join(extra))
            for line in report.ratios(load, mean, compare):
                print(line)
            if tls_targets:
                for line in bench_tls.ratios(load, mean):
                    print(line)
        if failed:
            sys.exit("targets that did not answer every request: " + "; ".join(failed)
                     + f" (logs in {work})")
        for line in report.keeps_up():
            print(line)
        if "ledger" in targets:
            wait_shipped(admins["ledger"])
            line, every_request_stored = report.stored(ledger_rows(), rows_before)
            print(line)
            if not every_request_stored:
                sys.exit(f"usage records lost: logs in {work}")
        print()

    if "latency" in PHASES:
        # One connection, one request at a time: the latency each hop adds.
        path, script = scripts["chat"]
        lat = {}
        hops = [t for t in ("nginx", "pingora", "gateway") if t in targets]
        for _ in range(ROUNDS):
            for t in ["direct"] + hops:
                r = wrk(url(t, path), script, 1, max(2, DURATION // 2))
                for k in ("p50", "p99"):
                    lat.setdefault((t, k), []).append(r[k])
        m = {k: sorted(v)[len(v) // 2] for k, v in lat.items()}
        for t in hops:
            print(f"concurrency 1, chat: {t} adds p50 {m[(t, 'p50')] - m[('direct', 'p50')]:.3f} ms, "
                  f"p99 {m[(t, 'p99')] - m[('direct', 'p99')]:.3f} ms "
                  f"(direct p50 {m[('direct', 'p50')]:.3f}, p99 {m[('direct', 'p99')]:.3f})")
        print()

    gw_pid = servers["gateway"][1].pid
    print(f"gateway peak RSS under the bench: {rss_kb([gw_pid], 'VmHWM') / 1024:.1f} MB")

    if "strace" in PHASES and shutil.which("strace"):
        for load in ("chat", "stream"):
            path, script = scripts[load]
            out = os.path.join(work, f"strace-{load}.txt")
            tracer = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(gw_pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            r = wrk(url("gateway", path), script, CONNECTIONS, 3)
            tracer.send_signal(signal.SIGINT)
            tracer.wait()
            calls = {}
            for line in open(out):
                f = line.split()
                if len(f) >= 5 and f[3].isdigit() and f[-1] != "total":
                    calls[f[-1]] = int(f[3])
            n = max(1, r["requests"])
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
            print(f"gateway syscalls per {load} request (strace -c -f, {n} requests): "
                  f"{sum(calls.values()) / n:.1f} total; " + ", ".join(f"{k} {v / n:.2f}" for k, v in top))
        print()

    if "slow" in PHASES:
        # Many long-lived streams at once: 20 chunks 200 ms apart (~4 s each). Every target is
        # asked for the usage chunk: the gateway asks the provider for it anyway (it bills from
        # it), and the emulator paces it like a token, 200 ms after the last, which a real
        # provider does not; without it in every target's request, the gateway's streams were
        # one pause (200 ms, 4.5 %) longer than nginx's for that alone.
        script = lua("slow", '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},'
                             '"messages":[{"role":"user","content":"Say hello"}]}',
                     'wrk.headers["x-emulator-chunks"] = "20"\nwrk.headers["x-emulator-chunk-delay-ms"] = "200"')
        rows = {}
        slow_targets = [t for t in ("direct", "nginx", "pingora", "gateway") if t in targets]
        slow_targets += [n for n in compare if n in targets]
        slow_targets += [t for t in tls_targets if t in targets]
        for t in slow_targets:
            ps = pids(t)
            # the tokenizer is built before the idle RSS is read, so not counted per stream
            cut_stream(servers[t][0], KEY, connect=lambda p, t=t: bench_tls.connect(t, p))
            idle = settled_rss_kb(ps)
            peak = [idle]
            proc = subprocess.Popen(["wrk", "-t2", f"-c{SLOW_STREAMS}", "-d10s", "--timeout", "30s", "--latency", "-s", script,
                                     url(t, "/v1/chat/completions")], stdout=subprocess.PIPE, text=True)
            while proc.poll() is None:
                peak.append(rss_kb(ps))
                time.sleep(0.2)
            t_out = proc.stdout.read()
            p50 = re.search(r"^\s*50%\s+([\d.]+)(ms|s)", t_out, re.M)
            p50_ms = float(p50.group(1)) * (1000 if p50.group(2) == "s" else 1) if p50 else float("nan")
            bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t_out)
            errors = re.search(r"Socket errors: (.*)", t_out)
            failures = ", ".join(x for x in (bad and f"{bad.group(1)} not 2xx",
                                             errors and f"socket errors: {errors.group(1)}") if x)
            rows[t] = (idle, max(peak), p50_ms, failures)
        for t in slow_targets:
            if t.startswith("direct"):
                continue
            # TLS targets against the emulator's TLS port, where it was measured
            base = "direct-tls" if t in bench_tls.TARGETS and "direct-tls" in rows else "direct"
            idle, peak, p50, failures = rows[t]
            print(f"{SLOW_STREAMS} slow streams through {t}: peak RSS {peak / 1024:.1f} MB "
                  f"(idle {idle / 1024:.1f} MB), {(peak - idle) / SLOW_STREAMS:.1f} KB per stream, "
                  f"p50 stream time {p50:.0f} ms, {p50 - rows[base][2]:+.0f} ms against {base}"
                  + (f"; FAILED: {failures}" if failures else ""))


try:
    main()
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    for pg in postgres:
        pg.stop()
    if os.environ.get("KEEP_WORK") == "1":
        print(f"logs and configs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
