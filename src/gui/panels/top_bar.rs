//! The top bar: demos, opening models and images, the device, frame times.

use crate::device::DeviceChoice;
use eframe::egui;

use crate::gui::app::{Command, EaselApp};
use crate::gui::state::Demo;

pub fn ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.horizontal_wrapped(|ui| {
        ui.strong("easel");
        ui.separator();
        ui.label("Demo:");
        if ui.button("Fashion-MNIST").on_hover_text("the small CNN and its 10,000 test images").clicked() {
            app.rt.commands.push(Command::LoadDemo(Demo::Fashion));
        }
        if ui.button("Photos (EfficientNet)").on_hover_text("EfficientNet-Lite0 and the bundled CC0 photos").clicked() {
            app.rt.commands.push(Command::LoadDemo(Demo::Photos));
        }
        ui.separator();
        ui.menu_button("Open", |ui| {
            if ui.button("Model…").clicked() {
                app.rt.commands.push(Command::PickModel);
                ui.close();
            }
            if ui.button("Images…").clicked() {
                app.rt.commands.push(Command::PickImages { folder: false });
                ui.close();
            }
            if ui.button("Image folder…").clicked() {
                app.rt.commands.push(Command::PickImages { folder: true });
                ui.close();
            }
            ui.separator();
            ui.label("Recent models");
            for p in app.state.recent_models.clone() {
                if ui.button(p.display().to_string()).clicked() {
                    app.rt.commands.push(Command::OpenModel(p));
                    ui.close();
                }
            }
            ui.label("Recent folders");
            for p in app.state.recent_images.clone() {
                if ui.button(p.display().to_string()).clicked() {
                    app.rt.commands.push(Command::OpenImages(vec![p]));
                    ui.close();
                }
            }
        });
        ui.separator();
        let mut choice = app.state.device;
        egui::ComboBox::from_label("Device")
            .selected_text(choice.to_string())
            .show_ui(ui, |ui| {
                for c in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Wgpu] {
                    ui.selectable_value(&mut choice, c, c.to_string());
                }
            });
        if choice != app.state.device {
            app.rt.commands.push(Command::SetDevice(choice));
        }
        match &app.rt.device {
            Some(d) => ui.label(format!("{} · {}", d.backend, d.adapter)).on_hover_text(&d.reason),
            None => ui.label("starting the device…"),
        };
        ui.separator();
        match &app.rt.model {
            Some(m) => ui.label(format!("Model: {} ({} classes)", m.name, m.classes.len())).on_hover_text(format!(
                "{}\n{}\ninput {}x{}x{}\nweights sha256 {}",
                m.architecture,
                m.path.display(),
                m.input.0,
                m.input.1,
                m.input.2,
                m.hash
            )),
            None if app.rt.model_job.is_some() => ui.label("loading the model…"),
            None => ui.label("no model"),
        };
        ui.separator();
        ui.checkbox(&mut app.rt.frames.measuring, "Frame times");
        if app.rt.frames.measuring {
            if let (Some(p50), Some(p99)) = (app.rt.frames.percentile(50.0), app.rt.frames.percentile(99.0)) {
                ui.label(format!("p50 {p50:.1} · p99 {p99:.1} ms")).on_hover_text(format!(
                    "time the UI thread spent per frame, over the last {} frames",
                    app.rt.frames.work_ms.len()
                ));
            }
        }
    });
}
