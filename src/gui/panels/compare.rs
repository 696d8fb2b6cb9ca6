//! The Compare view: methods x classes for one image (predicted next to true or runner-up),
//! or one method across several images, optionally on one shared colour scale.

use eframe::egui;

use super::explain::{map_methods, title_of};
use super::picture_ui;
use crate::gui::app::{Command, EaselApp};

pub fn ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Methods:");
        for name in map_methods() {
            let mut on = app.state.compare_methods.iter().any(|m| m == name);
            if ui.checkbox(&mut on, title_of(name)).changed() {
                if on {
                    app.state.compare_methods.push(name.to_string());
                } else {
                    app.state.compare_methods.retain(|m| m != name);
                }
            }
        }
    });
    ui.horizontal(|ui| {
        if ui.button("Methods × classes for this image").clicked() {
            app.rt.commands.push(Command::RunCompare);
        }
        ui.separator();
        ui.add(egui::Slider::new(&mut app.state.compare_images, 2..=12).text("images"));
        if ui.button(format!("{} across images", title_of(&app.state.method))).clicked() {
            app.start_compare_images();
        }
        ui.separator();
        if ui.checkbox(&mut app.state.compare_shared_scale, "one scale per method").changed() {
            app.rt.commands.push(Command::Rerender);
        }
    });
    ui.separator();
    if app.rt.compare.is_empty() {
        ui.label("Choose methods and press a button above.");
        return;
    }
    let done = app.rt.compare.iter().filter(|c| c.map.is_some()).count();
    if done < app.rt.compare.len() {
        ui.add(egui::ProgressBar::new(done as f32 / app.rt.compare.len() as f32).text(format!("{done}/{} maps", app.rt.compare.len())));
    }
    egui::ScrollArea::both().show(ui, |ui| {
        egui::Grid::new("compare_grid").spacing([12.0, 12.0]).show(ui, |ui| {
            for (i, cell) in app.rt.compare.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.set_width(260.0);
                    ui.label(&cell.title);
                    match (&cell.shown, &cell.error) {
                        (_, Some(e)) => {
                            ui.colored_label(egui::Color32::from_rgb(200, 60, 40), e);
                        }
                        (Some(s), None) => {
                            picture_ui(ui, s, 250.0, false);
                        }
                        (None, None) => {
                            ui.spinner();
                        }
                    }
                });
                if i % 2 == 1 {
                    ui.end_row();
                }
            }
        });
    });
}
