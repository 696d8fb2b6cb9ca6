//! Progress reporting and cancellation for long jobs, shared by the CLI and the GUI's worker.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// What a long computation is told: where to report progress and a flag that cancels it.
/// Checked between batches, steps and windows.
#[derive(Clone, Copy, Default)]
pub struct Progress<'a> {
    cancel: Option<&'a AtomicBool>,
    report: Option<&'a (dyn Fn(usize, usize) + Sync)>,
}

impl<'a> Progress<'a> {
    /// No reporting, no cancellation.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(cancel: Option<&'a AtomicBool>, report: Option<&'a (dyn Fn(usize, usize) + Sync)>) -> Self {
        Progress { cancel, report }
    }

    pub fn with_cancel(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    pub fn with_report(mut self, report: &'a (dyn Fn(usize, usize) + Sync)) -> Self {
        self.report = Some(report);
        self
    }

    /// The same cancel flag, no reporting (for a step inside a larger job).
    pub fn without_report(&self) -> Progress<'a> {
        Progress { cancel: self.cancel, report: None }
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// `Err(Cancelled)` once the flag is set.
    pub fn check(&self) -> Result<()> {
        match self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    pub fn report(&self, done: usize, total: usize) {
        if let Some(f) = self.report {
            f(done, total);
        }
    }
}
