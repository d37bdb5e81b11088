"""What the load bench reads of a gateway's usage ledger while it runs: the spool's and the
shipper's counters from the admin listener's /metrics, sampled during a measurement (the
highest shipping lag and unshipped backlog seen), and the wait until the shipper has
delivered everything the spool took."""
import re
import threading
import time
import urllib.request

SHIPPED = "cheapai_usage_ship_records_total"
APPENDED = "cheapai_usage_spool_records_appended_total"
LAG = "cheapai_usage_ship_lag_seconds"
UNSHIPPED = "cheapai_usage_spool_unshipped_bytes"
FAILURES = "cheapai_usage_ship_failures_total"
NAMES = (SHIPPED, APPENDED, LAG, UNSHIPPED, FAILURES)
# Often enough to see a lag that lasts a fraction of a second, rarely enough that rendering
# /metrics costs the gateway nothing measurable.
SAMPLE_EVERY = 0.2
# How long "everything shipped" must hold to count as caught up.
SETTLE = 0.3


def ledger_metrics(admin_port):
    """The spool's and shipper's series (unlabelled) from the gateway's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = {}
    for name in NAMES:
        m = re.search(r"^" + name + r" ([0-9.eE+-]+)$", text, re.M)
        if not m:
            raise SystemExit(f"{name} missing from the gateway's /metrics")
        found[name] = float(m.group(1))
    return found


class ShipSampler:
    """Watches a measurement and the shipper's catch-up after it:

        with ShipSampler(admin_port) as ship:
            ...wrk...
            ship.caught_up = wait_shipped(admin_port)

    samples the lag and the backlog meanwhile; afterwards `shipped` (records delivered from
    the start until caught up), `seconds` (from the start until caught up), `max_lag_s`,
    `max_unshipped_bytes` and `failures` (failed deliveries)."""

    def __init__(self, admin_port):
        self.admin_port = admin_port
        self.max_lag_s = 0.0
        self.max_unshipped_bytes = 0
        self.failures = 0
        self.caught_up = None
        self._stop = threading.Event()

    def _sample(self):
        m = ledger_metrics(self.admin_port)
        self.max_lag_s = max(self.max_lag_s, m[LAG])
        self.max_unshipped_bytes = max(self.max_unshipped_bytes, int(m[UNSHIPPED]))
        return m

    def _run(self):
        while not self._stop.wait(SAMPLE_EVERY):
            self._sample()

    def __enter__(self):
        self.before = self._sample()
        self.started = time.time()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def wrk_ended(self):
        """Marks the end of the load; `caught_up` counts from here."""
        self.load_seconds = time.time() - self.started

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        after = self._sample()
        self.seconds = self.load_seconds + (self.caught_up or 0.0)
        self.shipped = int(after[SHIPPED] - self.before[SHIPPED])
        self.failures = int(after[FAILURES] - self.before[FAILURES])
        return False


def wait_shipped(admin_port, timeout=120.0):
    """Waits until everything the spool took is delivered, and stays so for a moment (a
    request wrk has its answer for may still be writing its record); returns the seconds
    until it first was, or None when the shipper had not caught up within `timeout`."""
    started = time.time()
    caught_up = None  # (when, records appended then)
    while time.time() - started < timeout:
        m = ledger_metrics(admin_port)
        if m[SHIPPED] >= m[APPENDED] and m[UNSHIPPED] == 0:
            if caught_up is None or caught_up[1] != m[APPENDED]:
                caught_up = (time.time(), m[APPENDED])
            elif time.time() - caught_up[0] >= SETTLE:
                return caught_up[0] - started
        else:
            caught_up = None
        time.sleep(0.05)
    return None
