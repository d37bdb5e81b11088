"""What the bench scripts share: free ports, a process's memory and its CPU by thread from
/proc, and a stream its client leaves early (which makes the gateway build a tokenizer for
its usage estimate)."""
import collections
import os
import re
import socket
import time

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def port():
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pids, field="VmRSS"):
    """The sum of a /proc/<pid>/status memory field (VmRSS, VmHWM) over `pids`, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(field + r":\s+(\d+)", f.read())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def thread_cpu_ms(pid):
    """CPU milliseconds (utime + stime) of `pid`'s threads so far, summed by thread name with
    any trailing number dropped (tokio's and Pingora's threads of one pool share a name)."""
    by_name = collections.Counter()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return by_name
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = re.sub(r"[-_ ]?\d+$", "", stat[stat.index("(") + 1:stat.rindex(")")])
        fields = stat.rsplit(")", 1)[1].split()
        by_name[name] += (int(fields[11]) + int(fields[12])) * TICK_MS
    return by_name


def settled_rss_kb(pids):
    """RSS once it has stopped changing for a second (at most 10 s)."""
    last, steady, deadline = rss_kb(pids), 0, time.time() + 10
    while steady < 5 and time.time() < deadline:
        time.sleep(0.2)
        now = rss_kb(pids)
        steady = steady + 1 if now == last else 0
        last = now
    return last


def cut_stream(target_port, key, model="gpt-4o", connect=None):
    """One stream the client leaves after its first bytes. The gateway then estimates the
    stream's usage, which builds the tokenizer of the model's encoding once (for every later
    request). `connect(port)` opens the socket where plain TCP will not do (a TLS listener)."""
    body = b'{"model":"%s","stream":true,"messages":[{"role":"user","content":"Say hello"}]}' % model.encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {key}\r\n"
            f"content-type: application/json\r\nx-emulator-chunks: 20\r\n"
            f"x-emulator-chunk-delay-ms: 200\r\ncontent-length: {len(body)}\r\n\r\n")
    connect = connect or (lambda p: socket.create_connection(("127.0.0.1", p), timeout=10))
    with connect(target_port) as s:
        s.sendall(head.encode() + body)
        s.recv(4096)
