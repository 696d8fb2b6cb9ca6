//! The window chrome around the views: the top bar (demos, opening models and images, the
//! device, frame times), the banner, the image list and the tab row.

use easel_core::device::DeviceChoice;
use eframe::egui;

use crate::command::{Command, Pick};
use crate::ctx::Notes;
use crate::frames::FrameStats;
use crate::session::Session;
use crate::state::{Demo, SessionState, Tab};

pub fn top_bar_ui(ui: &mut egui::Ui, session: &Session, state: &SessionState, frames: &mut FrameStats, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        ui.strong("easel");
        ui.separator();
        ui.label("Demo:");
        if ui.button("Fashion-MNIST").on_hover_text("the small CNN and its 10,000 test images").clicked() {
            cmds.push(Command::LoadDemo(Demo::Fashion));
        }
        if ui.button("Photos (EfficientNet)").on_hover_text("EfficientNet-Lite0 and the bundled CC0 photos").clicked() {
            cmds.push(Command::LoadDemo(Demo::Photos));
        }
        ui.separator();
        ui.menu_button("Open", |ui| {
            for (label, pick) in [("Model…", Pick::Model), ("Images…", Pick::Images), ("Image folder…", Pick::ImageFolder)] {
                if ui.button(label).clicked() {
                    cmds.push(Command::Pick(pick));
                    ui.close();
                }
            }
            ui.separator();
            ui.label("Recent models");
            for p in &state.recent_models {
                if ui.button(p.display().to_string()).clicked() {
                    cmds.push(Command::OpenModel(p.clone()));
                    ui.close();
                }
            }
            ui.label("Recent folders");
            for p in &state.recent_images {
                if ui.button(p.display().to_string()).clicked() {
                    cmds.push(Command::OpenImages(vec![p.clone()]));
                    ui.close();
                }
            }
        });
        ui.separator();
        let mut choice = state.device;
        egui::ComboBox::from_label("Device").selected_text(choice.to_string()).show_ui(ui, |ui| {
            for c in DeviceChoice::ALL {
                ui.selectable_value(&mut choice, c, c.to_string());
            }
        });
        if choice != state.device {
            cmds.push(Command::SetDevice(choice));
        }
        match &session.device {
            Some(d) => ui.label(d.backend.to_string()).on_hover_text(format!("{}\n{}", d.adapter, d.reason)),
            None => ui.label("starting the device…"),
        };
        ui.separator();
        match &session.model {
            _ if session.model_job.is_running() => ui.label("loading the model…"),
            Some(m) => ui.label(format!("Model: {} ({} classes)", m.name, m.classes.len())).on_hover_text(format!(
                "{}\n{}\ninput {}x{}x{}\nweights sha256 {}",
                m.architecture,
                m.path.display(),
                m.input.0,
                m.input.1,
                m.input.2,
                m.hash
            )),
            None => ui.label("no model"),
        };
        ui.separator();
        ui.checkbox(&mut frames.measuring, "Frame times");
        if frames.measuring
            && let (Some(p50), Some(p99)) = (frames.percentile(50.0), frames.percentile(99.0))
        {
            ui.label(format!("p50 {p50:.1} · p99 {p99:.1} ms"))
                .on_hover_text(format!("time the UI thread spent per frame, over the last {} frames", frames.work_ms.len()));
        }
    });
}

/// Errors (red, each dismissable) and the last status line.
pub fn banner_ui(ui: &mut egui::Ui, notes: &Notes, cmds: &mut Vec<Command>) {
    for (i, e) in notes.errors.iter().enumerate() {
        ui.horizontal_wrapped(|ui| {
            ui.colored_label(egui::Color32::from_rgb(200, 40, 40), e.as_str());
            if ui.small_button("Dismiss").clicked() {
                cmds.push(Command::DismissError(i));
            }
        });
    }
    if let Some(s) = &notes.status {
        ui.label(s);
    }
}

/// The image list: every image of the open folder or set, with its label; arrow keys move.
pub fn images_ui(ui: &mut egui::Ui, session: &Session, cmds: &mut Vec<Command>) -> bool {
    ui.heading("Images");
    if session.images.is_empty() {
        ui.label(if session.images_job.is_running() { "loading…" } else { "Open images or a folder, or drop them here." });
        return false;
    }
    ui.label(format!("{} images", session.images.len())).on_hover_text(&session.images.source);
    ui.small("arrow keys move");
    ui.separator();
    let row_h = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    let n = session.images.len();
    let selected = session.selected;
    // one line per row (show_rows lays out by a fixed row height): long names are truncated
    ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
    egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row_h, n, |ui, rows| {
        for i in rows {
            let e = &session.images.entries[i];
            let label = match session.images.label_name(i) {
                Some(l) => format!("{} · {l}", e.name),
                None => e.name.clone(),
            };
            let r = ui.selectable_label(i == selected, &label).on_hover_text(label);
            if r.clicked() && i != selected {
                cmds.push(Command::SelectImage(i));
            }
            if i == selected && session.scroll_to_selected {
                r.scroll_to_me(Some(egui::Align::Center));
            }
        }
    });
    true
}

/// The tabs.
pub fn tabs_ui(ui: &mut egui::Ui, tab: Tab, cmds: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        for t in Tab::ALL {
            if ui.selectable_label(tab == t, t.title()).clicked() && tab != t {
                cmds.push(Command::SetTab(t));
            }
        }
    });
}
