"""The load bench's PostgreSQL server for the `ledger` target: `initdb` into the bench's work
directory, `postgres` on a free loopback port with durable settings (fsync and full page
writes on, synchronous commit: what a real ledger runs with), a `ledger` database.

PostgreSQL refuses to run as root: under root, initdb, the server and psql run as the
`postgres` user that Debian's package creates, and the data directory is handed to it (as
tests/common/postgres.rs does for the tests)."""
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time

from proc_probe import port

# The same server settings as the ledger's store bench (examples/ledger_bench), so that the two
# benches measure one configuration.
SETTINGS = ["fsync=on", "full_page_writes=on", "synchronous_commit=on",
            "max_connections=200", "shared_buffers=256MB"]


def bindir():
    """`pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin (Debian)."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and os.path.exists(os.path.join(out.stdout.strip(), "initdb")):
            return out.stdout.strip()
    except OSError:
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if not found:
        raise SystemExit("PostgreSQL's initdb not found (scripts/setup installs postgresql)")
    return os.path.dirname(found[-1])


class Postgres:
    """A throwaway server in `work`/pg; `stop()` ends it and removes it."""

    def __init__(self, work):
        self.bin = bindir()
        self.dir = os.path.join(work, "pg")
        self.port = port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.proc = None
        os.makedirs(os.path.join(self.dir, "sock"))
        if self.user:
            # the postgres user must reach its directory through the bench's private one
            os.chmod(work, 0o711)
            entry = pwd.getpwnam(self.user)
            for d in (self.dir, os.path.join(self.dir, "sock")):
                os.chown(d, entry.pw_uid, entry.pw_gid)

    def run(self, name, *args, **kw):
        return subprocess.run([os.path.join(self.bin, name), *args], user=self.user,
                              env=dict(os.environ, LC_ALL="C"), capture_output=True, text=True,
                              **kw)

    def start(self):
        """initdb, start, wait until it accepts connections, create the `ledger` database.
        Returns the seconds all of that took."""
        started = time.time()
        data = os.path.join(self.dir, "data")
        out = self.run("initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                       "--no-sync", "-D", data)
        if out.returncode != 0:
            raise SystemExit(f"initdb failed: {out.stderr}")
        args = [os.path.join(self.bin, "postgres"), "-D", data, "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={os.path.join(self.dir, 'sock')}"]
        for s in SETTINGS:
            args += ["-c", s]
        log = open(os.path.join(self.dir, "postgres.log"), "w")
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(log.name, entry.pw_uid, entry.pw_gid)
        self.proc = subprocess.Popen(args, user=self.user, env=dict(os.environ, LC_ALL="C"),
                                     stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 60
        while self.run("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)).returncode != 0:
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"postgres did not start; its log: {log.name}")
            time.sleep(0.05)
        self.psql("postgres", "CREATE DATABASE ledger")
        return time.time() - started

    def url(self):
        """The `ledger` database's URL (trust auth on loopback: no password in it)."""
        return f"postgres://postgres@127.0.0.1:{self.port}/ledger"

    def psql(self, db, sql):
        """Runs `sql` in `db`; returns psql's unaligned, tuples-only output."""
        out = self.run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                       "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql)
        if out.returncode != 0:
            raise SystemExit(f"psql {sql!r}: {out.stderr}")
        return out.stdout.strip()

    def stop(self):
        """Immediate shutdown (SIGQUIT) and the data directory removed: its data is thrown
        away, so the shutdown checkpoint a clean stop writes and fsyncs (2 s) is skipped."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
