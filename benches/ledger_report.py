"""The load bench's figures for the usage ledger, against the issue's targets:

1. chat RPS with the PostgreSQL ledger (`ledger`) at least 0.85x the same run without it
   (`gateway`, whose ledger is SQLite, and every COMPARE build, from before the ledger);
2. ingest keeps up with the gateway's own peak RPS: met when, after every measurement,
   everything was shipped within CATCH_UP_S of wrk's end (what was left when the load
   stopped took under a second to ship) with no failed delivery, and after the load every
   request wrk completed is a row in PostgreSQL. Printed with it: records shipped per second from a measurement's
   start until all were shipped, against wrk's requests per second, and the highest lag seen.

A target missed is printed with the amount it is missed by; the bench goes on (figures on a
shared machine are noisy). Records missing from the store are a failure: the bench exits
non-zero."""

RPS_TARGET = 0.85
# A shipper that keeps up has at most this much left to ship when the load stops.
CATCH_UP_S = 1.0


def verdict(value, target):
    """'met' or how far below `target` `value` is (both ratios)."""
    if value != value:  # NaN: a target of the comparison did not run
        return "not measured"
    if value >= target:
        return f"target >= {target:.2f}x: met"
    return f"target >= {target:.2f}x: MISSED by {target - value:.3f} ({(target - value) / target:.1%})"


class LedgerReport:
    def __init__(self):
        # (target, load) -> lists of per-measurement figures
        self.ingest = {}
        self.completed = {}

    def measured(self, target, load, r, ship, pg_cpu_ms):
        """Keeps one measurement's ingest (`ship`: a ShipSampler); returns the line to print
        under its row. The rate is what was shipped from the measurement's start until
        everything was, over that time: the requests' records, all of them delivered."""
        rate = ship.shipped / ship.seconds if ship.seconds else 0.0
        caught_up = ship.caught_up
        acc = self.ingest.setdefault((target, load), {"rate": [], "rps": [], "lag": [], "catch": [],
                                                      "failures": [], "pg_cpu": []})
        acc["rate"].append(rate)
        acc["rps"].append(r["rps"])
        acc["lag"].append(ship.max_lag_s)
        acc["catch"].append(caught_up)
        acc["failures"].append(ship.failures)
        if pg_cpu_ms is not None:
            acc["pg_cpu"].append(pg_cpu_ms / max(1, r["requests"]))
        self.completed[target] = self.completed.get(target, 0) + r["requests"]
        caught = f"{caught_up:.2f} s" if caught_up is not None else "NOT within 120 s"
        pg = f", PostgreSQL {pg_cpu_ms / max(1, r['requests']):.4f} ms/req of it" if pg_cpu_ms is not None else ""
        failed = f", {ship.failures} failed deliveries" if ship.failures else ""
        return (f"      ingest {target}: shipped {ship.shipped} records in {ship.seconds:.2f} s = "
                f"{rate:.0f}/s (wrk {r['rps']:.0f} req/s), all shipped {caught} after wrk ended, "
                f"lag max {ship.max_lag_s:.3f} s, backlog max {ship.max_unshipped_bytes / 1024:.0f} KiB"
                f"{pg}{failed}")

    @staticmethod
    def by_thread(target, after, before, requests):
        """The line of a gateway's CPU per request by thread name (µs): its proxy workers
        against the spool writer, the shipper's runtime and the PostgreSQL client's."""
        per = {name: (ms - before.get(name, 0.0)) * 1000 / max(1, requests) for name, ms in after.items()}
        shown = sorted(((n, us) for n, us in per.items() if us >= 0.05), key=lambda x: -x[1])
        return (f"      cpu/req by thread {target}: {sum(per.values()):.1f} us = "
                + ", ".join(f"{name} {us:.1f}" for name, us in shown))

    def ratios(self, load, mean, compare):
        """The ledger's RPS against the same run without it, and its CPU with PostgreSQL's."""
        lines = []
        ledger = mean("ledger", load, "rps")
        if ledger != ledger:
            return lines
        for other in ["gateway"] + list(compare):
            ratio = ledger / mean(other, load, "rps")
            lines.append(f"ratio {load:<7} ledger/{other} = {ratio:.2f}x ({verdict(ratio, RPS_TARGET)})")
        pg = self.ingest.get(("ledger", load), {}).get("pg_cpu", [])
        pg_ms = sum(pg) / len(pg) if pg else float("nan")
        lines.append(f"      {load:<7} cpu/req ledger {mean('ledger', load, 'cpu'):.4f} ms "
                     f"(PostgreSQL {pg_ms:.4f} ms of it), gateway (SQLite) {mean('gateway', load, 'cpu'):.4f} ms")
        return lines

    def keeps_up(self):
        """Target 2, per gateway with a ledger: shipped/s against its peak RPS, lag, catch-up."""
        lines = []
        for target in ("gateway", "ledger"):
            runs = {load: v for (t, load), v in self.ingest.items() if t == target}
            if not runs:
                continue
            peak_load, peak = max(((l, max(v["rps"])) for l, v in runs.items()), key=lambda x: x[1])
            at_peak = runs[peak_load]
            i = at_peak["rps"].index(peak)
            lags = [x for v in runs.values() for x in v["lag"]]
            catches = [x for v in runs.values() for x in v["catch"]]
            late = sum(1 for c in catches if c is None or c > CATCH_UP_S)
            worst = max((c for c in catches if c is not None), default=float("nan"))
            failures = sum(x for v in runs.values() for x in v["failures"])
            met = "met" if late == 0 and failures == 0 else (
                f"MISSED: {late} of {len(catches)} measurements not all shipped within "
                f"{CATCH_UP_S:.0f} s, {failures} failed deliveries")
            lines.append(
                f"ingest {target} ({'PostgreSQL' if target == 'ledger' else 'SQLite'}): at its peak "
                f"({peak_load}, {peak:.0f} req/s) shipped {at_peak['rate'][i]:.0f} records/s "
                f"= {at_peak['rate'][i] / peak:.2f}x; lag max {max(lags):.3f} s over every "
                f"measurement; all shipped at most {worst:.2f} s after a measurement ended "
                f"(target: within {CATCH_UP_S:.0f} s, no failed delivery: {met})")
        return lines

    def stored(self, rows, rows_before):
        """Target 2's end: every request wrk completed on `ledger` is a row in PostgreSQL.
        `rows` and `rows_before` are (every row, rows not marked client-disconnected) after
        and before the load. Rows beyond wrk's count are the requests in flight when each
        measurement ended, which wrk does not count (answered, or cut and marked
        client-disconnected). Returns (line, every request stored)."""
        made, answered = rows[0] - rows_before[0], rows[1] - rows_before[1]
        kept = self.completed.get("ledger", 0)
        ok = made >= kept and answered >= kept
        return (f"ledger rows in PostgreSQL after the load: {made} ({answered} not marked "
                f"client-disconnected); wrk completed {kept} requests: "
                + ("every request stored" if ok else f"{kept - min(made, answered)} requests MISSING from the store")
                + (f"; {made - kept} more records: requests in flight when wrk stopped counting"
                   if made > kept else "")), ok
