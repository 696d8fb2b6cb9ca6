//! The app under `egui_kittest` (no display, no GPU): a harness on the CPU with its own cache
//! folder, and a loop that steps the UI until a condition holds.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use easel_app::state::{Demo, State};
use easel_app::{EaselApp, StartOptions};
use easel_core::device::DeviceChoice;
use easel_core::explain::MethodKind;
use egui_kittest::Harness;

pub type App = Harness<'static, EaselApp>;

/// A fresh folder for one test (removed first if a previous run left it).
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("easel-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The app on the CPU at `size`, from stored state and/or a demo, caching into `cache`.
pub fn harness_with(stored: Option<State>, demo: Option<Demo>, size: (f32, f32), cache: PathBuf) -> App {
    Harness::builder().with_size(eframe::egui::vec2(size.0, size.1)).build_eframe(move |cc| {
        EaselApp::new(&cc.egui_ctx, stored, StartOptions { demo, device: Some(DeviceChoice::Cpu), cache: Some(cache), ..Default::default() })
    })
}

/// The app on a demo at 1400x900 with a cache of its own.
pub fn harness(demo: Demo, name: &str) -> App {
    harness_with(None, Some(demo), (1400.0, 900.0), scratch(name))
}

/// Step the UI until `done` holds (the worker runs on its own thread meanwhile).
pub fn wait_for(h: &mut App, what: &str, secs: u64, done: impl Fn(&EaselApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}; errors: {:?}", h.state().notes.errors);
        h.step();
        std::thread::sleep(Duration::from_millis(15));
    }
    h.step();
}

/// The finished map of the image on screen, if any.
pub fn map_of(app: &EaselApp) -> Option<MethodKind> {
    let g = app.session.generation();
    app.explain.shown_map(g).filter(|_| !app.explain.map.is_running()).map(|m| m.output.explanation.method.kind())
}

/// The name of the image on screen.
pub fn current_name(app: &EaselApp) -> Option<String> {
    app.session.current.as_ref().map(|c| c.name.clone())
}
