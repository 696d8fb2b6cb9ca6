//! One job slot type for every long job (explanation, attack, trust check, evaluation,
//! training, loading): it owns the running job's id, its cancel flag, its progress and the
//! last good result. `restart` cancels the old job; events of any other id are stale and
//! dropped, so a late result can never land beside the wrong image.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A job's number, unique in the process: results for a job nobody waits for are dropped.
pub type JobId = u64;

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// A fresh job id.
pub fn next_job_id() -> JobId {
    NEXT_JOB.fetch_add(1, Ordering::Relaxed)
}

/// What a request carries to the worker: its id and the flag that cancels it.
#[derive(Clone, Debug)]
pub struct Ticket {
    pub id: JobId,
    pub cancel: Arc<AtomicBool>,
}

impl Ticket {
    /// A ticket no slot tracks (one-off work such as saving a file).
    pub fn detached() -> Ticket {
        Ticket { id: next_job_id(), cancel: Arc::new(AtomicBool::new(false)) }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// The job that is running now.
#[derive(Debug)]
struct Running {
    ticket: Ticket,
    started: Instant,
    done: usize,
    total: usize,
    /// When progress started being counted (the first report), for the time left.
    first_report: Option<(Instant, usize)>,
}

/// What the slot's owner shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Nothing asked yet.
    Idle,
    Running,
    /// The last result is on screen and current.
    Done,
    /// The last job was cancelled (the previous result, if any, stays).
    Cancelled,
    /// The last job failed; the message is in [`JobSlot::error`].
    Failed,
}

/// One long job's slot.
#[derive(Debug)]
pub struct JobSlot<T> {
    running: Option<Running>,
    last: Option<T>,
    /// The result on screen belongs to other settings than the running job (drawn dimmed).
    stale: bool,
    state: SlotState,
    error: Option<String>,
    elapsed: Option<Duration>,
}

impl<T> Default for JobSlot<T> {
    fn default() -> Self {
        JobSlot { running: None, last: None, stale: false, state: SlotState::Idle, error: None, elapsed: None }
    }
}

impl<T> JobSlot<T> {
    /// Cancel whatever runs and start a new job: returns the ticket the request carries.
    pub fn restart(&mut self) -> Ticket {
        self.cancel_running();
        let ticket = Ticket { id: next_job_id(), cancel: Arc::new(AtomicBool::new(false)) };
        self.running = Some(Running { ticket: ticket.clone(), started: Instant::now(), done: 0, total: 0, first_report: None });
        self.stale = self.last.is_some();
        self.state = SlotState::Running;
        self.error = None;
        ticket
    }

    /// Cancel the running job at once: its flag is set (the worker stops at its next check)
    /// and its late events will be dropped. The previous result stays.
    pub fn cancel(&mut self) {
        if self.cancel_running() {
            self.state = SlotState::Cancelled;
        }
    }

    fn cancel_running(&mut self) -> bool {
        match self.running.take() {
            Some(r) => {
                r.ticket.cancel.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Forget the result and cancel the job (another model or data set).
    pub fn clear(&mut self) {
        self.cancel_running();
        *self = JobSlot::default();
    }

    /// Whether an event of job `id` is for this slot's running job.
    pub fn owns(&self, id: JobId) -> bool {
        self.running.as_ref().is_some_and(|r| r.ticket.id == id)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub fn state(&self) -> SlotState {
        self.state
    }

    /// Progress of the running job; `false` when `id` is stale.
    pub fn progress(&mut self, id: JobId, done: usize, total: usize) -> bool {
        match &mut self.running {
            Some(r) if r.ticket.id == id => {
                r.done = done;
                r.total = total;
                if r.first_report.is_none() && done > 0 {
                    r.first_report = Some((Instant::now(), done));
                }
                true
            }
            _ => false,
        }
    }

    /// The running job's result; `false` (and the value dropped) when `id` is stale.
    pub fn finish(&mut self, id: JobId, value: T) -> bool {
        if !self.owns(id) {
            return false;
        }
        let r = self.running.take().expect("owned");
        self.elapsed = Some(r.started.elapsed());
        self.last = Some(value);
        self.stale = false;
        self.state = SlotState::Done;
        true
    }

    /// The running job failed; `false` when `id` is stale.
    pub fn fail(&mut self, id: JobId, message: impl Into<String>) -> bool {
        if !self.owns(id) {
            return false;
        }
        self.running = None;
        self.stale = false;
        self.state = SlotState::Failed;
        self.error = Some(message.into());
        true
    }

    /// The worker confirmed a cancel; `false` when `id` is stale.
    pub fn cancelled(&mut self, id: JobId) -> bool {
        if !self.owns(id) {
            return false;
        }
        self.running = None;
        self.stale = false;
        self.state = SlotState::Cancelled;
        true
    }

    /// (done, total) of the running job.
    pub fn counts(&self) -> Option<(usize, usize)> {
        self.running.as_ref().map(|r| (r.done, r.total))
    }

    /// The fraction done, where the job reports a total.
    pub fn fraction(&self) -> Option<f32> {
        self.running.as_ref().filter(|r| r.total > 0).map(|r| (r.done as f32 / r.total as f32).clamp(0.0, 1.0))
    }

    pub fn running_for(&self) -> Option<Duration> {
        self.running.as_ref().map(|r| r.started.elapsed())
    }

    /// The time left, from the rate since the first progress report.
    pub fn eta(&self) -> Option<Duration> {
        let r = self.running.as_ref()?;
        let (t0, d0) = r.first_report?;
        let done = r.done.checked_sub(d0)?;
        if done == 0 || r.total <= r.done {
            return None;
        }
        let per = t0.elapsed().as_secs_f64() / done as f64;
        Some(Duration::from_secs_f64(per * (r.total - r.done) as f64))
    }

    /// A progress line: "12/50 · 3 s left".
    pub fn progress_text(&self) -> String {
        match self.counts() {
            Some((d, t)) if t > 0 => match self.eta() {
                Some(eta) => format!("{d}/{t} · {} left", format_duration(eta)),
                None => format!("{d}/{t}"),
            },
            Some(_) => match self.running_for() {
                Some(s) if s.as_secs() >= 1 => format!("working… {}", format_duration(s)),
                _ => "working…".into(),
            },
            None => String::new(),
        }
    }

    pub fn last(&self) -> Option<&T> {
        self.last.as_ref()
    }

    pub fn last_mut(&mut self) -> Option<&mut T> {
        self.last.as_mut()
    }

    pub fn take_last(&mut self) -> Option<T> {
        self.last.take()
    }

    /// Put a result in place without a job (a result computed elsewhere, or restored).
    pub fn set_last(&mut self, value: T) {
        self.last = Some(value);
        self.stale = false;
        if self.running.is_none() {
            self.state = SlotState::Done;
        }
    }

    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Mark the result on screen as belonging to other settings (drawn dimmed) without a job.
    pub fn mark_stale(&mut self) {
        self.stale = self.last.is_some();
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// How long the last finished job took.
    pub fn elapsed(&self) -> Option<Duration> {
        self.elapsed
    }
}

/// "850 ms", "12 s", "3 min 20 s".
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_cancels_the_old_job_and_drops_its_late_result() {
        let mut slot: JobSlot<&str> = JobSlot::default();
        let first = slot.restart();
        let second = slot.restart();
        assert!(first.is_cancelled(), "the superseded job's flag is set");
        assert!(!second.is_cancelled());
        assert!(!slot.finish(first.id, "old"), "a stale result is dropped");
        assert!(slot.last().is_none());
        assert!(slot.finish(second.id, "new"));
        assert_eq!(slot.last(), Some(&"new"));
        assert_eq!(slot.state(), SlotState::Done);
    }

    #[test]
    fn cancel_keeps_the_previous_result_and_reports_cancelled() {
        let mut slot: JobSlot<u32> = JobSlot::default();
        let t = slot.restart();
        assert!(slot.finish(t.id, 1));
        let t2 = slot.restart();
        assert!(slot.is_stale());
        slot.cancel();
        assert!(t2.is_cancelled());
        assert!(!slot.is_running());
        assert_eq!(slot.state(), SlotState::Cancelled);
        assert_eq!(slot.last(), Some(&1));
        assert!(!slot.progress(t2.id, 1, 2), "late progress is dropped");
    }

    #[test]
    fn a_cancelled_job_with_no_predecessor_leaves_no_computing_state() {
        let mut slot: JobSlot<u32> = JobSlot::default();
        slot.restart();
        slot.cancel();
        assert_eq!(slot.state(), SlotState::Cancelled);
        assert!(slot.last().is_none() && !slot.is_running());
    }

    #[test]
    fn failure_is_kept_for_its_job_only() {
        let mut slot: JobSlot<u32> = JobSlot::default();
        let a = slot.restart();
        let b = slot.restart();
        assert!(!slot.fail(a.id, "old error"));
        assert!(slot.fail(b.id, "bad file"));
        assert_eq!(slot.error(), Some("bad file"));
        assert_eq!(slot.state(), SlotState::Failed);
    }
}
