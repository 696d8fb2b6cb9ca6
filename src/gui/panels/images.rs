//! The image list: every image of the open folder or set, with its label; arrow keys move.

use eframe::egui;

use crate::gui::app::{Command, EaselApp};

pub fn ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.heading("Images");
    if app.rt.images.is_empty() {
        ui.label(if app.rt.images_job.is_some() { "loading…" } else { "Open images or a folder, or drop them here." });
        return;
    }
    ui.label(format!("{} images", app.rt.images.len())).on_hover_text(&app.rt.images_source);
    ui.small("arrow keys move");
    ui.separator();
    let classes = app.rt.model.as_ref().map(|m| m.classes.clone()).unwrap_or_default();
    let row_h = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    let n = app.rt.images.len();
    let selected = app.state.selected;
    // one line per row (show_rows lays out by a fixed row height): long names are truncated
    ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
    egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, row_h, n, |ui, rows| {
        for i in rows {
            let e = &app.rt.images[i];
            let label = match e.label {
                Some(l) => format!("{} · {}", e.name, classes.get(l).map(String::as_str).unwrap_or("?")),
                None => e.name.clone(),
            };
            let r = ui.selectable_label(i == selected, &label).on_hover_text(label);
            if r.clicked() && i != selected {
                app.rt.commands.push(Command::SelectImage(i));
            }
            if i == selected && app.rt.scroll_to_selected {
                r.scroll_to_me(Some(egui::Align::Center));
            }
        }
    });
    app.rt.scroll_to_selected = false;
}
