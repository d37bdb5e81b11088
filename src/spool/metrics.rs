//! The spool's and the shipper's metrics. One [`SpoolMetrics`] set is registered in the
//! crate's registry ([`SPOOL`]); a spool takes its handles at open, so that a test can give
//! each spool a private, unregistered set and read exact values while other spools run.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
};

use crate::metrics::{register, unreachable_metric};

/// The set `/metrics` renders (forced by `metrics::init`).
pub static SPOOL: LazyLock<SpoolMetrics> = LazyLock::new(|| SpoolMetrics::new().registered());

/// Handles of every spool and shipper metric (each clone shares its series).
#[derive(Clone)]
pub struct SpoolMetrics {
    /// Bytes appended and not yet shipped: queued in memory plus unshipped on disk.
    pub unshipped_bytes: IntGauge,
    /// 1 while the spool is full (new billable requests should be refused), else 0.
    pub full: IntGauge,
    /// Bytes appended and not yet written and fsynced: what a crash now would take.
    pub queued_bytes: IntGauge,
    pub appended: IntCounter,
    pub refused: IntCounter,
    pub fsync_seconds: Histogram,
    /// Failed disk operations, by [`DiskOp`].
    pub disk_errors: IntCounterVec,
    /// Frames that failed their checksum or could not be decoded; what followed them in
    /// their segment could not be read.
    pub corrupt_frames: IntCounter,
    pub shipped: IntCounter,
    pub delivery_failures: IntCounter,
    /// Age of the oldest record not yet delivered (0 when none waits).
    pub lag_seconds: Gauge,
}

impl SpoolMetrics {
    /// A new, unregistered set.
    pub(crate) fn new() -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("cheapai");
        let int_gauge = |name: &str, help: &str| {
            IntGauge::with_opts(opts(name, help)).unwrap_or_else(|_| unreachable_metric())
        };
        let int_counter = |name: &str, help: &str| {
            IntCounter::with_opts(opts(name, help)).unwrap_or_else(|_| unreachable_metric())
        };
        SpoolMetrics {
            unshipped_bytes: int_gauge(
                "usage_spool_unshipped_bytes",
                "Usage-record bytes appended to the spool and not yet shipped to the store \
                 (queued in memory plus unshipped on disk); the spool's cap applies to it.",
            ),
            full: int_gauge(
                "usage_spool_full",
                "1 while the usage spool is full and billable requests are to be refused.",
            ),
            queued_bytes: int_gauge(
                "usage_spool_queued_bytes",
                "Usage-record bytes appended to the spool and not yet written and fsynced: \
                 what a crash at this moment would lose.",
            ),
            appended: int_counter(
                "usage_spool_records_appended_total",
                "Usage records accepted by the spool.",
            ),
            refused: int_counter(
                "usage_spool_records_refused_total",
                "Usage records the spool refused because it was full.",
            ),
            fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "usage_spool_fsync_seconds",
                    "Time of one group commit's fdatasync.",
                )
                .namespace("cheapai")
                // 50 µs .. ~1.6 s
                .buckets(exponential_buckets(0.00005, 2.0, 16).unwrap_or_default()),
            )
            .unwrap_or_else(|_| unreachable_metric()),
            disk_errors: IntCounterVec::new(
                opts(
                    "usage_spool_disk_errors_total",
                    "Failed disk operations of the usage spool, by operation; each is logged \
                     with its path and retried.",
                ),
                &["op"],
            )
            .unwrap_or_else(|_| unreachable_metric()),
            corrupt_frames: int_counter(
                "usage_spool_corrupt_frames_total",
                "Spooled frames that failed their checksum or decoding (disk corruption).",
            ),
            shipped: int_counter(
                "usage_ship_records_total",
                "Usage records delivered from the spool to the store.",
            ),
            delivery_failures: int_counter(
                "usage_ship_failures_total",
                "Failed deliveries of a batch of usage records to the store (each retried).",
            ),
            lag_seconds: Gauge::with_opts(opts(
                "usage_ship_lag_seconds",
                "Age of the oldest usage record not yet delivered to the store (0 when none).",
            ))
            .unwrap_or_else(|_| unreachable_metric()),
        }
    }

    /// Registers every metric of the set in the crate's registry, with every `op` series
    /// at 0 so that `/metrics` lists them from the start.
    fn registered(self) -> Self {
        for op in DiskOp::ALL {
            self.disk_errors.with_label_values(&[op.label()]);
        }
        SpoolMetrics {
            unshipped_bytes: register(self.unshipped_bytes),
            full: register(self.full),
            queued_bytes: register(self.queued_bytes),
            appended: register(self.appended),
            refused: register(self.refused),
            fsync_seconds: register(self.fsync_seconds),
            disk_errors: register(self.disk_errors),
            corrupt_frames: register(self.corrupt_frames),
            shipped: register(self.shipped),
            delivery_failures: register(self.delivery_failures),
            lag_seconds: register(self.lag_seconds),
        }
    }

    /// The set of a spool this process only ships (another process's left-behind slot): its
    /// counters add to `/metrics`' (records shipped, failures, disk errors are this
    /// process's work), its gauges are its own, so that they never overwrite what the
    /// process's own spool reports (unshipped bytes, full, lag).
    pub fn for_adopted() -> Self {
        let own = SpoolMetrics::new();
        SpoolMetrics {
            unshipped_bytes: own.unshipped_bytes,
            full: own.full,
            queued_bytes: own.queued_bytes,
            lag_seconds: own.lag_seconds,
            ..SPOOL.clone()
        }
    }

    /// Counts one failed disk operation.
    pub(crate) fn disk_error(&self, op: DiskOp) {
        self.disk_errors.with_label_values(&[op.label()]).inc();
    }

    /// Failed disk operations of one kind so far.
    #[cfg(test)]
    pub(crate) fn disk_errors_of(&self, op: DiskOp) -> u64 {
        self.disk_errors.with_label_values(&[op.label()]).get()
    }
}

/// The disk operations whose failures are counted apart (the `op` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskOp {
    /// Creating or opening a segment, or syncing the directory after creating one.
    Open,
    Write,
    Fsync,
    /// Cutting a failed write's partial bytes off a segment.
    Truncate,
    /// The shipper reading a segment.
    Read,
    /// Writing the shipper's checkpoint.
    Checkpoint,
}

impl DiskOp {
    const ALL: [DiskOp; 6] = [
        DiskOp::Open,
        DiskOp::Write,
        DiskOp::Fsync,
        DiskOp::Truncate,
        DiskOp::Read,
        DiskOp::Checkpoint,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DiskOp::Open => "open",
            DiskOp::Write => "write",
            DiskOp::Fsync => "fsync",
            DiskOp::Truncate => "truncate",
            DiskOp::Read => "read",
            DiskOp::Checkpoint => "checkpoint",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn every_spool_metric_is_registered_and_rendered() {
        std::sync::LazyLock::force(&super::SPOOL);
        let text = String::from_utf8(crate::metrics::render()).unwrap();
        for name in [
            "cheapai_usage_spool_unshipped_bytes",
            "cheapai_usage_spool_full",
            "cheapai_usage_spool_queued_bytes",
            "cheapai_usage_spool_records_appended_total",
            "cheapai_usage_spool_records_refused_total",
            "cheapai_usage_spool_fsync_seconds",
            "cheapai_usage_spool_disk_errors_total",
            "cheapai_usage_spool_corrupt_frames_total",
            "cheapai_usage_ship_records_total",
            "cheapai_usage_ship_failures_total",
            "cheapai_usage_ship_lag_seconds",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
