//! The panels, one file each; each draws from the app and pushes [`Command`]s.

pub mod adversarial;
pub mod compare;
pub mod dataset;
pub mod explain;
pub mod images;
pub mod sampling;
pub mod top_bar;

use eframe::egui;

use super::app::{Command, EaselApp, Shown};
use super::state::Tab;

/// The whole window.
pub fn root_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    egui::Panel::top("top_bar").show(ui, |ui| top_bar::ui(ui, app));
    if !app.rt.errors.is_empty() || app.rt.status.is_some() {
        egui::Panel::top("banner").show(ui, |ui| banner_ui(ui, app));
    }
    egui::Panel::left("images").resizable(true).default_size(220.0).min_size(150.0).show(ui, |ui| images::ui(ui, app));
    egui::CentralPanel::default().show(ui, |ui| {
        ui.horizontal(|ui| {
            for (tab, name) in [(Tab::Explain, "Explain"), (Tab::Compare, "Compare"), (Tab::Adversarial, "Adversarial"), (Tab::Dataset, "Dataset"), (Tab::Sampling, "Sampling lab")] {
                if ui.selectable_label(app.state.tab == tab, name).clicked() && app.state.tab != tab {
                    app.state.tab = tab;
                    match tab {
                        Tab::Compare if app.rt.compare.is_empty() => app.rt.commands.push(Command::RunCompare),
                        Tab::Adversarial if app.rt.attack.result.is_none() => app.rt.commands.push(Command::RunAttack),
                        Tab::Dataset => app.enter_dataset(),
                        _ => {}
                    }
                }
            }
        });
        ui.separator();
        match app.state.tab {
            Tab::Explain => explain::ui(ui, app),
            Tab::Compare => compare::ui(ui, app),
            Tab::Adversarial => adversarial::ui(ui, app),
            Tab::Dataset => dataset::ui(ui, app),
            Tab::Sampling => sampling::ui(ui, app),
        }
    });
}

/// Errors (red, each dismissable) and the last status line.
fn banner_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    for (i, e) in app.rt.errors.iter().enumerate() {
        ui.horizontal(|ui| {
            ui.colored_label(egui::Color32::from_rgb(200, 40, 40), e.as_str());
            if ui.small_button("Dismiss").clicked() {
                app.rt.commands.push(Command::DismissError(i));
            }
        });
    }
    if let Some(s) = &app.rt.status {
        ui.label(s);
    }
}

/// Draw a picture at most `max` points wide, dimmed if `dim`; returns the response.
pub fn picture_ui(ui: &mut egui::Ui, shown: &Shown, max: f32, dim: bool) -> egui::Response {
    let [w, h] = shown.size;
    let scale = (max / w as f32).min(1.5);
    let size = egui::vec2(w as f32 * scale, h as f32 * scale);
    let tint = if dim { egui::Color32::from_white_alpha(110) } else { egui::Color32::WHITE };
    ui.add(egui::Image::new((shown.texture.id(), size)).tint(tint).sense(egui::Sense::hover()))
}
