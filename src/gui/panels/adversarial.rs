//! The Adversarial view: the seed's panda that becomes a gibbon. An epsilon slider, FGSM or
//! PGD, the original, the amplified perturbation and the adversarial image side by side with
//! the top classes before and after.

use eframe::egui;

use super::picture_ui;
use crate::gui::app::{Command, EaselApp};

pub fn ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let mut rerun = false;
    ui.horizontal_wrapped(|ui| {
        rerun |= ui.radio_value(&mut app.state.attack_pgd, false, "FGSM (one step)").changed();
        rerun |= ui.radio_value(&mut app.state.attack_pgd, true, "PGD (iterated)").changed();
        ui.separator();
        let r = ui.add(egui::Slider::new(&mut app.state.attack_epsilon_levels, 0.5..=16.0).step_by(0.5).text("epsilon (of 255 levels)"));
        rerun |= (r.changed() && !r.dragged()) || r.drag_stopped();
        if app.state.attack_pgd {
            let r = ui.add(egui::Slider::new(&mut app.state.attack_steps, 1..=50).text("steps"));
            rerun |= (r.changed() && !r.dragged()) || r.drag_stopped();
        }
        let classes = app.rt.model.as_ref().map(|m| m.classes.clone()).unwrap_or_default();
        let current = app.state.attack_target.and_then(|t| classes.get(t).cloned()).unwrap_or_else(|| "none (untargeted)".into());
        egui::ComboBox::from_label("push towards").selected_text(current).show_ui(ui, |ui| {
            rerun |= ui.selectable_value(&mut app.state.attack_target, None, "none (untargeted)").clicked();
            for (i, c) in classes.iter().enumerate() {
                rerun |= ui.selectable_value(&mut app.state.attack_target, Some(i), c).clicked();
            }
        });
    });
    if rerun {
        app.rt.commands.push(Command::RunAttack);
    }
    ui.separator();
    let Some(cur) = &app.rt.current else {
        ui.label("Select an image.");
        return;
    };
    if app.rt.attack.job.is_some() {
        let (d, t) = app.rt.attack.progress;
        ui.add(egui::ProgressBar::new(if t > 0 { d as f32 / t as f32 } else { 0.0 }).desired_width(300.0).text("attacking…"));
    }
    let result = app.rt.attack.result.as_ref().and_then(|r| r.adversarial.as_ref());
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.heading("Original");
            picture_ui(ui, &cur.picture, 300.0, false);
            if let Some(r) = result {
                top_ui(ui, &r.result.top_before);
            }
        });
        if let (Some((adv, pert)), Some(r)) = (&app.rt.attack_pictures, result) {
            let dim = app.rt.attack.stale;
            ui.vertical(|ui| {
                ui.heading("Perturbation (amplified)");
                picture_ui(ui, pert, 300.0, dim);
                ui.label(format!("largest change: {:.1} of 255 levels", r.result.linf * 255.0));
            });
            ui.vertical(|ui| {
                ui.heading("Adversarial");
                picture_ui(ui, adv, 300.0, dim);
                top_ui(ui, &r.result.top_after);
                if r.result.changed_top1 {
                    ui.colored_label(egui::Color32::from_rgb(200, 60, 40), format!("“{}” became “{}”", r.result.top_before[0].class, r.result.top_after[0].class));
                } else {
                    ui.label("the top class held");
                }
            });
        }
    });
}

fn top_ui(ui: &mut egui::Ui, top: &[crate::predict::ClassScore]) {
    for s in top.iter().take(5) {
        ui.label(format!("{:>5.1}%  {}", s.probability * 100.0, s.class));
    }
}
