//! The Explain view: the image with its top-k predictions (click a class to explain it), the
//! method and its settings, overlay controls, the map with the value under the cursor, and
//! whether the map can be trusted.

use crate::explain::{Baseline, Fill, IgMethod, Method, OcclusionParams, Roi, METHOD_NAMES};
use crate::render::{Colormap, Mode, Scale, Sign};
use eframe::egui;

use super::picture_ui;
use crate::gui::app::{Command, EaselApp};

/// Methods shown in the Explain view (attacks have their own view).
pub fn map_methods() -> impl Iterator<Item = &'static str> {
    METHOD_NAMES.iter().copied().filter(|m| *m != "fgsm" && *m != "pgd")
}

pub fn title_of(name: &str) -> &'static str {
    Method::default_for(name, 28, 28).map(|m| m.title()).unwrap_or("?")
}

pub fn ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    if app.rt.current.is_none() {
        ui.label(if app.rt.model.is_none() { "Open a model to begin (or pick a demo above)." } else { "Select an image." });
        return;
    }
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.set_width(250.0);
            predictions_ui(ui, app);
        });
        ui.separator();
        ui.vertical(|ui| {
            method_bar_ui(ui, app);
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| map_ui(ui, app));
                ui.vertical(|ui| {
                    ui.set_max_width(330.0);
                    egui::ScrollArea::vertical().id_salt("settings").show(ui, |ui| {
                        egui::CollapsingHeader::new("Method settings").default_open(true).show(ui, |ui| settings_ui(ui, app));
                        egui::CollapsingHeader::new("Overlay").default_open(true).show(ui, |ui| overlay_ui(ui, app));
                        egui::CollapsingHeader::new("Can this map be trusted?").default_open(true).show(ui, |ui| trust_ui(ui, app));
                        ui.horizontal(|ui| {
                            if ui.button("Save PNG…").clicked() {
                                app.rt.commands.push(Command::SavePng);
                            }
                            if ui.button("Export report…").on_hover_text("maps as PNG and NPY, settings JSON, model hash").clicked() {
                                app.rt.commands.push(Command::ExportReport);
                            }
                        });
                    });
                });
            });
        });
    });
}

fn predictions_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let Some(cur) = &app.rt.current else { return };
    picture_ui(ui, &cur.picture, 240.0, false);
    let entry = app.rt.images.get(cur.index);
    if let Some(e) = entry {
        ui.label(&e.name);
        if let (Some(l), Some(m)) = (e.label, &app.rt.model) {
            let correct = cur.top.first().map(|t| t.class_index) == Some(l);
            let text = format!("true class: {}", m.classes[l]);
            if correct {
                ui.colored_label(egui::Color32::from_rgb(40, 140, 60), format!("{text} (correct)"));
            } else {
                ui.colored_label(egui::Color32::from_rgb(200, 60, 40), format!("{text} (misclassified)"));
            }
        }
    }
    ui.separator();
    ui.label("Predictions (click to explain a class)");
    let target = app.rt.target.or(cur.top.first().map(|t| t.class_index));
    let mut clicked = None;
    egui::ScrollArea::vertical().id_salt("topk").max_height(260.0).show(ui, |ui| {
        for s in cur.top.iter().take(10) {
            let text = format!("{:>5.1}%  {}", s.probability * 100.0, s.class);
            if ui.selectable_label(target == Some(s.class_index), text).clicked() {
                clicked = Some(s.class_index);
            }
        }
    });
    if let Some(c) = clicked {
        let predicted = cur.top.first().map(|t| t.class_index);
        app.rt.commands.push(Command::SelectClass(if Some(c) == predicted { None } else { Some(c) }));
    }
}

fn method_bar_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Method:");
        for name in map_methods() {
            if ui.selectable_label(app.state.method == name, title_of(name)).clicked() && app.state.method != name {
                app.rt.commands.push(Command::SetMethod(name.to_string()));
            }
        }
    });
}

fn map_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let ev = &app.rt.explain;
    let running = ev.job.is_some();
    let class_name = |k: usize| app.rt.model.as_ref().and_then(|m| m.classes.get(k).cloned()).unwrap_or_default();
    if let Some(r) = &ev.result {
        let mut line = format!("{} of “{}”", r.method.title(), class_name(r.target));
        if let Some(l) = &r.layer {
            line.push_str(&format!(" at {l}"));
        }
        line.push_str(&format!(" · {:.0} ms", r.elapsed_secs * 1e3));
        ui.label(line);
    }
    let resp = if running && ev.partial.is_some() {
        ev.partial.as_ref().map(|p| picture_ui(ui, p, 420.0, false))
    } else {
        ev.shown.as_ref().map(|s| picture_ui(ui, s, 480.0, ev.stale))
    };
    if running {
        let (done, total) = ev.progress;
        ui.horizontal(|ui| {
            let frac = if total > 0 { done as f32 / total as f32 } else { 0.0 };
            ui.add(egui::ProgressBar::new(frac).desired_width(300.0).text(if total > 0 { format!("{done}/{total}") } else { "computing…".into() }));
            if ui.button("Cancel").clicked() {
                app.rt.commands.push(Command::CancelExplain);
            }
        });
    } else if ev.result.is_none() {
        ui.label("computing…");
    }
    // The value under the cursor, in the map's own units.
    if let (Some(resp), Some(r), Some(cur)) = (resp, &ev.result, &app.rt.current) {
        if let Some(pos) = resp.hover_pos() {
            let rect = resp.rect;
            // the picture may carry a colour bar on its right: map only the image part
            let img_w = rect.height() * cur.image.width as f32 / cur.image.height as f32;
            let fx = (pos.x - rect.left()) / img_w;
            let fy = (pos.y - rect.top()) / rect.height();
            if (0.0..1.0).contains(&fx) && (0.0..1.0).contains(&fy) {
                let x = (fx * cur.image.width as f32) as usize;
                let y = (fy * cur.image.height as f32) as usize;
                if let Some(v) = r.map.value_at(x, y) {
                    ui.label(format!("value at ({x}, {y}): {v:.4}"));
                }
            }
        }
    }
    if let Some(r) = &ev.result {
        if let Some(d) = r.convergence_delta {
            ui.label(format!("IG convergence delta: {d:.4} (f(x) - f(baseline) - sum of attributions)"));
        }
        ui.label(format!("colour scale: {} = end of the colour bar", crate::render::format_number(r.scale)));
    }
}

/// Returns true when the edit is finished (not mid-drag), so the map is recomputed once.
fn done(r: &egui::Response) -> bool {
    (r.changed() && !r.dragged()) || r.drag_stopped()
}

fn settings_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let Some(mut method) = app.method() else { return };
    let Some(model) = app.rt.model.clone() else { return };
    let (_, h, w) = model.input;
    let side = h.min(w);
    let mut rerun = false;
    match &mut method {
        Method::Occlusion(p) => {
            let mut win = p.window.0;
            let mut stride = p.stride.0;
            rerun |= done(&ui.add(egui::Slider::new(&mut win, 1..=side).text("window (px)")));
            rerun |= done(&ui.add(egui::Slider::new(&mut stride, 1..=side).text("stride (px)")));
            p.window = (win, win);
            p.stride = (stride, stride);
            ui.horizontal(|ui| {
                ui.label("Picasso preset:");
                for frac in [0.5f32, 0.25, 0.1, 0.05] {
                    if ui.small_button(format!("{frac}")).on_hover_text(format!("window {frac} of the side, 8 windows per axis")).clicked() {
                        if let Ok(q) = OcclusionParams::picasso(h, w, frac, 8, p.fill.clone()) {
                            p.window = q.window;
                            p.stride = q.stride;
                            rerun = true;
                        }
                    }
                }
            });
            let current = fill_name(&p.fill);
            egui::ComboBox::from_label("fill").selected_text(current).show_ui(ui, |ui| {
                for (name, fill) in [
                    ("0 (normalised)", Fill::Constant(0.0)),
                    ("grey", Fill::Pixel(128)),
                    ("black", Fill::Pixel(0)),
                    ("white", Fill::Pixel(255)),
                    ("image mean", Fill::ImageMean),
                    ("blurred copy", Fill::Blur((side as f32 / 16.0).max(1.0))),
                ] {
                    if ui.selectable_label(current == name, name).clicked() {
                        p.fill = fill;
                        rerun = true;
                    }
                }
            });
            rerun |= done(&ui.add(egui::Slider::new(&mut p.batch_size, 1..=128).text("batch size")));
            let mut roi = p.roi.is_some();
            if ui.checkbox(&mut roi, "region of interest").changed() {
                p.roi = roi.then_some(Roi { x: 0, y: 0, width: w, height: h });
                rerun = true;
            }
            if let Some(r) = &mut p.roi {
                ui.horizontal(|ui| {
                    rerun |= done(&ui.add(egui::DragValue::new(&mut r.x).range(0..=w - 1).prefix("x ")));
                    rerun |= done(&ui.add(egui::DragValue::new(&mut r.y).range(0..=h - 1).prefix("y ")));
                    rerun |= done(&ui.add(egui::DragValue::new(&mut r.width).range(1..=w).prefix("w ")));
                    rerun |= done(&ui.add(egui::DragValue::new(&mut r.height).range(1..=h).prefix("h ")));
                });
            }
            if let Err(e) = p.validate(h, w) {
                ui.colored_label(egui::Color32::from_rgb(200, 60, 40), e.to_string());
                rerun = false;
            }
        }
        Method::Ig(p) => {
            rerun |= done(&ui.add(egui::Slider::new(&mut p.steps, 2..=300).text("steps")));
            egui::ComboBox::from_label("quadrature")
                .selected_text(match p.method { IgMethod::Gausslegendre => "Gauss-Legendre", IgMethod::Trapezoid => "Riemann trapezoid" })
                .show_ui(ui, |ui| {
                    rerun |= ui.selectable_value(&mut p.method, IgMethod::Gausslegendre, "Gauss-Legendre").clicked();
                    rerun |= ui.selectable_value(&mut p.method, IgMethod::Trapezoid, "Riemann trapezoid").clicked();
                });
            let current = match &p.baseline { Baseline::Zero => "zero", Baseline::Black => "black", Baseline::Blur(_) => "blurred", Baseline::Image(_) => "image" };
            egui::ComboBox::from_label("baseline").selected_text(current).show_ui(ui, |ui| {
                for (name, b) in [("zero", Baseline::Zero), ("black", Baseline::Black), ("blurred", Baseline::Blur((side as f32 / 16.0).max(1.0)))] {
                    if ui.selectable_label(current == name, name).clicked() {
                        p.baseline = b;
                        rerun = true;
                    }
                }
            });
            rerun |= done(&ui.add(egui::Slider::new(&mut p.internal_batch_size, 1..=64).text("internal batch")));
        }
        Method::Smoothgrad(p) | Method::Vargrad(p) => {
            rerun |= done(&ui.add(egui::Slider::new(&mut p.samples, 1..=200).text("samples")));
            rerun |= done(&ui.add(egui::Slider::new(&mut p.noise, 0.0..=0.5).text("noise (fraction of range)")));
            rerun |= done(&ui.add(egui::DragValue::new(&mut p.seed).prefix("seed ")));
        }
        Method::Gradcam { stage } => {
            let last = model.stages.len().saturating_sub(1);
            let mut s = stage.unwrap_or(last);
            egui::ComboBox::from_label("layer").selected_text(model.stages.get(s).cloned().unwrap_or_default()).show_ui(ui, |ui| {
                for (i, name) in model.stages.iter().enumerate() {
                    rerun |= ui.selectable_value(&mut s, i, name).clicked();
                }
            });
            *stage = Some(s);
        }
        Method::Saliency | Method::Gradient | Method::GradXInput => {
            ui.label("No settings: one gradient of the target logit.");
        }
        Method::Fgsm(_) | Method::Pgd(_) => {}
    }
    app.state.methods.insert(app.state.method.clone(), method);
    if rerun {
        app.rt.commands.push(Command::Rerun);
    }
}

fn fill_name(f: &Fill) -> &'static str {
    match f {
        Fill::Constant(_) => "0 (normalised)",
        Fill::Pixel(128) => "grey",
        Fill::Pixel(0) => "black",
        Fill::Pixel(_) => "white",
        Fill::ImageMean => "image mean",
        Fill::Blur(_) => "blurred copy",
    }
}

fn overlay_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let before = (app.state.render.clone(), app.state.auto_colours);
    let o = &mut app.state.render;
    egui::ComboBox::from_label("mode").selected_text(format!("{:?}", o.mode)).show_ui(ui, |ui| {
        for m in [Mode::HeatMap, Mode::BlendedHeatMap, Mode::MaskedImage, Mode::AlphaScaling] {
            ui.selectable_value(&mut o.mode, m, format!("{m:?}"));
        }
    });
    ui.checkbox(&mut app.state.auto_colours, "sign and colours follow the method");
    if app.state.auto_colours {
        if let Some(m) = app.method() {
            let eff = app.render_options(&m);
            ui.label(format!("sign {:?}, colormap {}", eff.sign, eff.colormap.name()));
        }
    }
    let o = &mut app.state.render;
    ui.add_enabled_ui(!app.state.auto_colours, |ui| {
        egui::ComboBox::from_label("sign").selected_text(format!("{:?}", o.sign)).show_ui(ui, |ui| {
            for s in [Sign::Positive, Sign::Negative, Sign::Absolute, Sign::All] {
                ui.selectable_value(&mut o.sign, s, format!("{s:?}"));
            }
        });
        egui::ComboBox::from_label("colormap").selected_text(o.colormap.name()).show_ui(ui, |ui| {
            for c in Colormap::ALL {
                ui.selectable_value(&mut o.colormap, c, c.name());
            }
        });
    });
    ui.add(egui::Slider::new(&mut o.alpha, 0.0..=1.0).text("alpha"));
    ui.add(egui::Slider::new(&mut o.outlier_percent, 0.0..=20.0).text("clip top % of mass"));
    let mut fixed = matches!(o.scale, Scale::Fixed(_));
    ui.horizontal(|ui| {
        if ui.checkbox(&mut fixed, "shared fixed scale").changed() {
            let current = app.rt.explain.result.as_ref().map(|r| r.scale).unwrap_or(1.0);
            o.scale = if fixed { Scale::Fixed(current.max(1e-6)) } else { Scale::PerImage };
        }
        if let Scale::Fixed(v) = &mut o.scale {
            ui.add(egui::DragValue::new(v).speed(0.001).range(1e-6..=1e6));
        }
    });
    if (app.state.render.clone(), app.state.auto_colours) != before {
        app.rt.commands.push(Command::Rerender);
    }
}

fn trust_ui(ui: &mut egui::Ui, app: &mut EaselApp) {
    let ev = &app.rt.explain;
    match &ev.trust {
        Some(t) => {
            if let Some(s) = &t.sanity {
                let text = format!("rank correlation with a randomised model: {:.2}", s.score);
                if s.passed {
                    ui.colored_label(egui::Color32::from_rgb(40, 140, 60), format!("{text}: the map depends on what the model learned"));
                } else {
                    ui.colored_label(egui::Color32::from_rgb(200, 60, 40), format!("{text}: the map barely changes when the weights are random : do not trust it"));
                }
                if s.steps.len() > 1 {
                    egui::Grid::new("cascade").striped(true).show(ui, |ui| {
                        ui.label("randomised down to");
                        ui.label("rank corr.");
                        ui.end_row();
                        for st in &s.steps {
                            ui.label(&st.randomised_down_to);
                            ui.label(format!("{:.2}", st.spearman));
                            ui.end_row();
                        }
                    });
                }
            }
            if let (Some(d), Some(i)) = (t.deletion_auc, t.insertion_auc) {
                ui.label(format!("deletion AUC {d:.3} (lower is better) · insertion AUC {i:.3} (higher is better)"));
            }
        }
        None if ev.trust_job.is_some() && ev.job.is_none() => {
            ui.label("checking…");
        }
        None => {
            ui.label("No check yet.");
        }
    }
    ui.horizontal(|ui| {
        ui.checkbox(&mut app.state.trust, "quick check after each gradient map");
        if ui.add_enabled(app.rt.explain.result.is_some(), egui::Button::new("Full cascade")).on_hover_text("randomise layers from the top down, one map per step").clicked() {
            app.rt.commands.push(Command::RunTrust);
        }
    });
}
