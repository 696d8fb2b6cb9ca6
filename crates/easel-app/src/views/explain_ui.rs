//! The Explain view's panel: the image with its top-k predictions (click a class to explain
//! it), the method and its settings, overlay controls, the map with the value under the
//! cursor, and whether the map can be trusted. It reads state and pushes commands.

use easel_core::explain::{Baseline, Fill, IgMethod, Method, MethodKind, NoiseBase, OcclusionParams, Roi};
use easel_core::render::{Colormap, Mode, Scale, Sign};
use easel_jobs::SlotState;
use easel_jobs::slot::format_duration;
use eframe::egui;

use super::explain::ExplainView;
use crate::command::{Command, ExplainCommand};
use crate::session::Session;
use crate::state::ExplainSettings;
use crate::textures::picture_ui;

const GREEN: egui::Color32 = egui::Color32::from_rgb(40, 140, 60);
const RED: egui::Color32 = egui::Color32::from_rgb(200, 60, 40);

fn push(cmds: &mut Vec<Command>, c: ExplainCommand) {
    cmds.push(Command::Explain(c));
}

pub fn ui(ui: &mut egui::Ui, view: &ExplainView, settings: &mut ExplainSettings, session: &Session, cmds: &mut Vec<Command>) {
    let Some(cur) = &session.current else {
        let text = match (&session.model, session.images.is_empty()) {
            (None, _) if session.model_job.is_running() => "loading the model…".to_string(),
            (None, _) => "Open a model to begin (or pick a demo above).".to_string(),
            (Some(_), true) => "Open images or a folder, or drop them here.".to_string(),
            (Some(_), false) if session.predict_job.is_running() => format!("loading {}…", session.name_of(session.selected)),
            _ => "Select an image.".to_string(),
        };
        ui.label(text);
        return;
    };
    let left = if ui.available_width() >= 980.0 { 240.0 } else { 190.0 };
    egui::ScrollArea::vertical().id_salt("explain").auto_shrink([false, false]).show(ui, |ui| {
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(left);
                predictions_ui(ui, view, session, cmds);
            });
            ui.separator();
            ui.vertical(|ui| {
                method_bar_ui(ui, settings, cmds);
                // the map and its settings side by side where both fit, else one above the other
                let rest = ui.available_width();
                if rest >= 600.0 {
                    let map_w = (rest - 330.0).clamp(260.0, 460.0);
                    ui.horizontal_top(|ui| {
                        ui.vertical(|ui| {
                            ui.set_width(map_w + 8.0);
                            map_ui(ui, view, settings, session, cmds, map_w)
                        });
                        ui.vertical(|ui| {
                            ui.set_max_width(310.0);
                            side_ui(ui, view, settings, session, cmds);
                        });
                    });
                } else {
                    let w = (ui.available_width() - 10.0).clamp(200.0, 420.0);
                    map_ui(ui, view, settings, session, cmds, w);
                    side_ui(ui, view, settings, session, cmds);
                }
            });
        });
        let _ = cur;
    });
}

fn side_ui(ui: &mut egui::Ui, view: &ExplainView, settings: &mut ExplainSettings, session: &Session, cmds: &mut Vec<Command>) {
    egui::CollapsingHeader::new("Method settings").default_open(true).show(ui, |ui| settings_ui(ui, settings, session, cmds));
    egui::CollapsingHeader::new("Overlay").default_open(true).show(ui, |ui| overlay_ui(ui, view, settings, session, cmds));
    egui::CollapsingHeader::new("Can this map be trusted?").default_open(true).show(ui, |ui| trust_ui(ui, view, settings, session, cmds));
    ui.horizontal(|ui| {
        if ui.button("Save PNG…").clicked() {
            cmds.push(Command::Pick(crate::command::Pick::SavePng));
        }
        if ui.button("Export report…").on_hover_text("maps as PNG and NPY, settings JSON, model hash").clicked() {
            cmds.push(Command::Pick(crate::command::Pick::Report));
        }
    });
}

fn predictions_ui(ui: &mut egui::Ui, view: &ExplainView, session: &Session, cmds: &mut Vec<Command>) {
    let (Some(cur), Some(model)) = (&session.current, &session.model) else { return };
    picture_ui(ui, &cur.picture, ui.available_width().min(240.0), false);
    ui.label(&cur.name);
    if let Some((text, correct)) = session.verdict() {
        let colour = if correct {
            GREEN
        } else if text.starts_with("true class") {
            RED
        } else {
            ui.visuals().text_color()
        };
        ui.colored_label(colour, text);
    }
    ui.separator();
    ui.label("Predictions (click to explain a class)");
    let target = view.target.or(cur.predicted());
    let mut clicked = None;
    egui::ScrollArea::vertical().id_salt("topk").max_height(240.0).show(ui, |ui| {
        for s in cur.top.iter().take(10) {
            let text = format!("{:>5.1}%  {}", s.probability * 100.0, s.class);
            if ui.selectable_label(target == Some(s.class_index), text).clicked() {
                clicked = Some(s.class_index);
            }
        }
    });
    if let Some(c) = clicked {
        push(cmds, ExplainCommand::SelectClass(if Some(c) == cur.predicted() { None } else { Some(c) }));
    }
    let _ = model;
}

fn method_bar_ui(ui: &mut egui::Ui, settings: &ExplainSettings, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Method:");
        for kind in MethodKind::maps() {
            if ui.selectable_label(settings.method == kind, kind.title()).clicked() && settings.method != kind {
                push(cmds, ExplainCommand::SetMethod(kind));
            }
        }
    });
}

fn map_ui(ui: &mut egui::Ui, view: &ExplainView, settings: &ExplainSettings, session: &Session, cmds: &mut Vec<Command>, width: f32) {
    let (Some(cur), Some(model)) = (&session.current, &session.model) else { return };
    let shown = view.shown_map(cur.generation);
    let running = view.map.is_running();
    // the caption names what is on screen: method, class, image
    if let Some(m) = shown {
        let ex = &m.output.explanation;
        let mut line = format!("{} of “{}” · {}", ex.method.title(), model.class_name(ex.target), m.image_name);
        if let Some(l) = &ex.layer {
            line.push_str(&format!(" at {l}"));
        }
        line.push_str(&format!(" · {:.0} ms", ex.elapsed_secs * 1e3));
        ui.label(line);
    }
    let resp = match (&view.partial, shown) {
        (Some(p), _) if running => Some(picture_ui(ui, p, width, false)),
        (_, Some(m)) => Some(picture_ui(ui, &m.shown, width, view.map.is_stale() && running)),
        _ => None,
    };
    if running {
        ui.horizontal(|ui| {
            let text = format!("{} · {}", settings.method.title(), view.map.progress_text());
            ui.add(egui::ProgressBar::new(view.map.fraction().unwrap_or(0.0)).desired_width(width.min(300.0)).text(text));
            if ui.button("Cancel").clicked() {
                push(cmds, ExplainCommand::Cancel);
            }
        });
    } else if let Some(secs) = view.waiting.filter(|_| shown.is_none()) {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("{} takes about {} on this model.", settings.method.title(), format_duration(std::time::Duration::from_secs_f64(secs))));
            if ui.button("Run").clicked() {
                push(cmds, ExplainCommand::Run);
            }
        });
    } else if shown.is_none() {
        match view.map.state() {
            SlotState::Cancelled => {
                ui.horizontal(|ui| {
                    ui.label("Cancelled.");
                    if ui.button("Run").clicked() {
                        push(cmds, ExplainCommand::Run);
                    }
                });
            }
            SlotState::Failed => {
                ui.colored_label(RED, view.map.error().unwrap_or("failed"));
            }
            _ => {
                ui.label("computing…");
            }
        }
    }
    // The value under the cursor, in the map's own units.
    if let (Some(resp), Some(m)) = (resp, shown)
        && let Some(pos) = resp.hover_pos()
    {
        let rect = resp.rect;
        // the picture may carry a colour bar on its right: map only the image part
        let img_w = rect.height() * cur.image.width as f32 / cur.image.height as f32;
        let fx = (pos.x - rect.left()) / img_w;
        let fy = (pos.y - rect.top()) / rect.height();
        if (0.0..1.0).contains(&fx) && (0.0..1.0).contains(&fy) {
            let x = (fx * cur.image.width as f32) as usize;
            let y = (fy * cur.image.height as f32) as usize;
            if let Some(v) = m.output.explanation.map.value_at(x, y) {
                ui.label(format!("value at ({x}, {y}): {v:.4}"));
            }
        }
    }
    if let Some(m) = shown {
        let ex = &m.output.explanation;
        if let (Some(d), Some(logit)) = (ex.convergence_delta, ex.target_logit) {
            ui.label(format!("IG convergence delta {d:+.4} beside the target logit {logit:.3} (sum of attributions minus f(x) - f(baseline))"));
        }
        ui.label(format!("colour scale: {} = end of the colour bar", easel_core::render::format_number(m.output.scale)));
    }
}

/// Returns true when the edit is finished (not mid-drag), so the map is recomputed once.
fn done(r: &egui::Response) -> bool {
    (r.changed() && !r.dragged()) || r.drag_stopped()
}

fn settings_ui(ui: &mut egui::Ui, settings: &mut ExplainSettings, session: &Session, cmds: &mut Vec<Command>) {
    let Some(model) = &session.model else { return };
    let mut method = ExplainView::method(settings, model);
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
            ui.horizontal_wrapped(|ui| {
                ui.label("Picasso preset:");
                for frac in [0.5f32, 0.25, 0.1, 0.05] {
                    if ui.small_button(format!("{frac}")).on_hover_text(format!("window {frac} of the side, 8 windows per axis")).clicked()
                        && let Ok(q) = OcclusionParams::picasso(h, w, frac, 8, p.fill.clone())
                    {
                        p.window = q.window;
                        p.stride = q.stride;
                        rerun = true;
                    }
                }
            });
            let current = p.fill.label();
            egui::ComboBox::from_label("fill").selected_text(current.clone()).show_ui(ui, |ui| {
                for (_, fill) in Fill::presets(h, w) {
                    let name = fill.label();
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
                ui.colored_label(RED, e.to_string());
                rerun = false;
            }
        }
        Method::Ig(p) => {
            rerun |= done(&ui.add(egui::Slider::new(&mut p.steps, 2..=300).text("steps")));
            egui::ComboBox::from_label("quadrature")
                .selected_text(match p.method {
                    IgMethod::Gausslegendre => "Gauss-Legendre",
                    IgMethod::Trapezoid => "Riemann trapezoid",
                })
                .show_ui(ui, |ui| {
                    rerun |= ui.selectable_value(&mut p.method, IgMethod::Gausslegendre, "Gauss-Legendre").clicked();
                    rerun |= ui.selectable_value(&mut p.method, IgMethod::Trapezoid, "Riemann trapezoid").clicked();
                });
            let current = p.baseline.label();
            egui::ComboBox::from_label("baseline").selected_text(current).show_ui(ui, |ui| {
                for b in [Baseline::Zero, Baseline::Black, Baseline::blur_for(h, w)] {
                    if ui.selectable_label(current == b.label(), b.label()).clicked() {
                        p.baseline = b;
                        rerun = true;
                    }
                }
            });
            rerun |= done(&ui.add(egui::Slider::new(&mut p.internal_batch_size, 1..=64).text("internal batch")));
        }
        Method::Smoothgrad(p) | Method::Vargrad(p) => {
            egui::ComboBox::from_label("averaged attribution").selected_text(p.base.title()).show_ui(ui, |ui| {
                for b in NoiseBase::ALL {
                    rerun |= ui.selectable_value(&mut p.base, b, b.title()).clicked();
                }
            });
            rerun |= done(&ui.add(egui::Slider::new(&mut p.samples, 1..=200).text("samples")));
            rerun |= done(&ui.add(egui::Slider::new(&mut p.noise, 0.0..=0.5).text("noise (fraction of range)")));
            if p.base == NoiseBase::Ig {
                rerun |= done(&ui.add(egui::Slider::new(&mut p.ig_steps, 2..=100).text("IG steps per sample")));
            }
            rerun |= done(&ui.add(egui::DragValue::new(&mut p.seed).prefix("seed ")));
        }
        Method::Gradcam { stage } => {
            let last = model.stages.len().saturating_sub(1);
            let mut s = stage.unwrap_or(last).min(last);
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
    if ui.button("Run again").on_hover_text("recompute the map with these settings").clicked() {
        rerun = true;
    }
    settings.methods.insert(settings.method, method);
    if rerun {
        push(cmds, ExplainCommand::Run);
    }
}

fn overlay_ui(ui: &mut egui::Ui, view: &ExplainView, settings: &mut ExplainSettings, session: &Session, cmds: &mut Vec<Command>) {
    let before = (settings.render.clone(), settings.auto_colours);
    egui::ComboBox::from_label("mode").selected_text(settings.render.mode.title()).show_ui(ui, |ui| {
        for m in Mode::ALL {
            ui.selectable_value(&mut settings.render.mode, m, m.title());
        }
    });
    ui.checkbox(&mut settings.auto_colours, "sign and colours follow the method");
    if settings.auto_colours
        && let Some(model) = &session.model
    {
        let eff = ExplainView::render_options(settings, &ExplainView::method(settings, model));
        ui.label(format!("sign {:?}, colormap {}", eff.sign, eff.colormap.name()));
    }
    let auto = settings.auto_colours;
    let o = &mut settings.render;
    ui.add_enabled_ui(!auto, |ui| {
        egui::ComboBox::from_label("sign").selected_text(format!("{:?}", o.sign)).show_ui(ui, |ui| {
            for s in Sign::ALL {
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
            let current = view.map.last().map(|m| m.output.scale).unwrap_or(1.0);
            o.scale = if fixed { Scale::Fixed(current.max(1e-6)) } else { Scale::PerImage };
        }
        if let Scale::Fixed(v) = &mut o.scale {
            ui.add(egui::DragValue::new(v).speed(0.001).range(1e-6..=1e6));
        }
    });
    if (settings.render.clone(), settings.auto_colours) != before {
        push(cmds, ExplainCommand::Rerender);
    }
}

fn trust_ui(ui: &mut egui::Ui, view: &ExplainView, settings: &mut ExplainSettings, session: &Session, cmds: &mut Vec<Command>) {
    let shown = view.shown_map(session.generation()).is_some();
    match view.trust.last().filter(|_| shown && !view.trust.is_running()) {
        Some(t) => {
            if let Some(s) = &t.sanity {
                let text = format!("rank correlation with a randomised model: {:.2}", s.score);
                if s.passed {
                    ui.colored_label(GREEN, format!("{text}: the map depends on what the model learned"));
                } else {
                    ui.colored_label(RED, format!("{text}: the map barely changes when the weights are random: do not trust it"));
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
            if let (Some(d), Some(i)) = (t.deletion_auc(), t.insertion_auc()) {
                ui.label(format!("deletion AUC {d:.3} (lower is better) · insertion AUC {i:.3} (higher is better)"));
            }
            if view.trust.state() == SlotState::Cancelled {
                ui.label("Cascade cancelled.");
            }
        }
        None if view.trust.is_running() => {
            ui.horizontal(|ui| {
                ui.add(
                    egui::ProgressBar::new(view.trust.fraction().unwrap_or(0.0)).desired_width(180.0).text(format!("cascade {}", view.trust.progress_text())),
                );
                if ui.button("Cancel").on_hover_text("stop the cascade").clicked() {
                    push(cmds, ExplainCommand::CancelTrust);
                }
            });
        }
        None => {
            ui.label(if view.trust.state() == SlotState::Cancelled { "Cascade cancelled." } else { "No check yet." });
        }
    }
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut settings.trust, "quick check after each gradient map");
        if ui
            .add_enabled(shown && !view.trust.is_running(), egui::Button::new("Full cascade"))
            .on_hover_text("randomise layers from the top down, one map per step")
            .clicked()
        {
            push(cmds, ExplainCommand::RunTrust);
        }
    });
}
