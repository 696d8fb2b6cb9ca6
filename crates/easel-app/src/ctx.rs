//! What a view gets besides its own state when it runs a command or takes an event: the
//! worker to send requests to, the session to read, the banner to write to, and room for
//! further commands. No view calls into the app shell.

use std::path::PathBuf;

use easel_jobs::worker::{Request, WorkerHandle};
use eframe::egui;

use crate::command::Command;
use crate::session::Session;

/// How a worker wakes the UI: a repaint after a millisecond. (egui answers an immediate
/// `request_repaint` with two frames; a software renderer spends about 50 ms of CPU on each,
/// taken from the job that sent the event.)
pub const WAKE_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

/// Errors (red, each dismissable) and the last status line.
#[derive(Default)]
pub struct Notes {
    pub errors: Vec<String>,
    pub status: Option<String>,
    /// Lines for scripts (`easel gui --announce`), printed after the frame.
    pub announcements: Vec<String>,
}

impl Notes {
    pub fn error(&mut self, e: impl std::fmt::Display) {
        let e = e.to_string();
        // the same message twice in a row (e.g. two images of a broken folder) is one banner
        if self.errors.last() != Some(&e) {
            self.errors.push(e);
        }
    }
}

/// Where the app keeps files, and how it was started.
#[derive(Clone, Debug, Default)]
pub struct AppPaths {
    /// Cached predictions and the lab's runs (`None`: no cache, runs in the temp folder).
    pub cache: Option<PathBuf>,
    /// The bundled `assets/` folder.
    pub assets: Option<PathBuf>,
}

impl AppPaths {
    /// Where the lab's runs go.
    pub fn lab_runs(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(std::env::temp_dir).join("lab-runs")
    }
}

pub struct Ctx<'a> {
    pub egui: &'a egui::Context,
    pub worker: &'a WorkerHandle,
    pub session: &'a Session,
    pub notes: &'a mut Notes,
    pub commands: &'a mut Vec<Command>,
    pub paths: &'a AppPaths,
}

impl Ctx<'_> {
    /// Queue a request; a full or stopped worker is a banner, never a block.
    pub fn send(&mut self, req: Request) -> bool {
        match self.worker.send(req) {
            Ok(()) => true,
            Err(e) => {
                self.notes.error(e);
                false
            }
        }
    }

    pub fn announce(&mut self, what: &str) {
        self.notes.announcements.push(what.to_string());
    }

    /// Run `read` (files to open, nothing the worker owns) on an `easel-open` thread and wake
    /// the UI when it is done; the view polls the receiver in its `logic`. `None` (with a
    /// banner naming `what`) when no thread could be started.
    pub fn read_off_thread<T: Send + 'static>(&mut self, what: &str, read: impl FnOnce() -> T + Send + 'static) -> Option<std::sync::mpsc::Receiver<T>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let repaint = self.egui.clone();
        let spawned = std::thread::Builder::new().name("easel-open".into()).spawn(move || {
            let _ = tx.send(read());
            repaint.request_repaint_after(WAKE_DELAY);
        });
        match spawned {
            Ok(_) => Some(rx),
            Err(e) => {
                self.notes.error(format!("cannot read {what}: {e}"));
                None
            }
        }
    }
}
