//! The reporter: library code reports progress through `Reporter` and logs through `tracing`; only
//! the edge (`commands::term`) knows how it is shown (indicatif bars on a terminal, periodic one-line logs
//! otherwise, nothing with `-q`).

mod plural;

pub use plural::{plural, plural_of, plural_were};

use std::sync::Arc;

/// Makes progress trackers for stages of work.
pub trait ProgressFactory: Send + Sync {
    /// A stage that counts `total` things called `unit` (`samples`, `partitions`).
    fn start(&self, label: &str, unit: &str, total: u64) -> Box<dyn ProgressSink>;
}

/// One stage's progress.
pub trait ProgressSink: Send + Sync {
    /// `items` more done, `bytes` more processed.
    fn advance(&self, items: u64, bytes: u64);
    /// A short status text shown beside the counts (request rate, retries, waits).
    fn set_detail(&self, _detail: String) {}
    /// The stage is over.
    fn finish(&self);
}

/// Cheap to clone; hand it to anything that does long work.
#[derive(Clone)]
pub struct Reporter(Arc<dyn ProgressFactory>);

impl Reporter {
    pub fn new(factory: Arc<dyn ProgressFactory>) -> Self {
        Reporter(factory)
    }

    /// Reports nothing (tests, `-q`).
    pub fn silent() -> Self {
        Reporter(Arc::new(Silent))
    }

    /// A stage that counts samples.
    pub fn start(&self, label: &str, total: u64) -> Progress {
        self.start_counting(label, "samples", total)
    }

    /// A stage that counts `total` things called `unit` (plural).
    pub fn start_counting(&self, label: &str, unit: &str, total: u64) -> Progress {
        Progress(self.0.start(label, unit, total))
    }
}

/// A running stage; finishes when dropped if not finished before.
pub struct Progress(Box<dyn ProgressSink>);

impl Progress {
    pub fn advance(&self, items: u64, bytes: u64) {
        self.0.advance(items, bytes);
    }

    pub fn set_detail(&self, detail: String) {
        self.0.set_detail(detail);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish();
    }
}

struct Silent;

impl ProgressFactory for Silent {
    fn start(&self, _: &str, _: &str, _: u64) -> Box<dyn ProgressSink> {
        Box::new(Silent)
    }
}

impl ProgressSink for Silent {
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}
