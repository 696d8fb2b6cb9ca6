//! The Pre-training view's panel: choose regimes, labels per class, noise, the head's learning
//! rate and freezing; train in the background with live curves; then one chart that tells the
//! story (accuracy against labelled images per class, log scale, one line per regime) with
//! what the labels cost beside it.

use easel_core::transfer::{LabelsToReach, Regime};
use eframe::egui;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::pretrain::{PretrainSettings, PretrainView};
use crate::command::{Command, Pick, PretrainCommand};

const COLOURS: [egui::Color32; 4] =
    [egui::Color32::from_rgb(200, 70, 70), egui::Color32::from_rgb(70, 130, 180), egui::Color32::from_rgb(90, 170, 90), egui::Color32::from_rgb(230, 140, 50)];

fn colour(r: Regime) -> egui::Color32 {
    COLOURS[Regime::ALL.iter().position(|x| *x == r).unwrap_or(0)]
}

pub fn ui(ui: &mut egui::Ui, view: &PretrainView, settings: &mut PretrainSettings, cmds: &mut Vec<Command>) {
    egui::ScrollArea::vertical().id_salt("pretrain").auto_shrink([false, false]).show(ui, |ui| {
        ui.label(
            "Labelled data is expensive: pre-train on something cheap (other classes, noisy labels, ImageNet) and fine-tune on the little you have. \
             The target Fashion-MNIST classes are learned from n clean labels each, under four starting points.",
        );
        setup_ui(ui, view, settings, cmds);
        ui.separator();
        if view.is_running() {
            live_ui(ui, view);
        }
        story_ui(ui, view, settings, cmds);
        ui.separator();
        finetune_ui(ui, view, cmds);
    });
}

fn setup_ui(ui: &mut egui::Ui, view: &PretrainView, s: &mut PretrainSettings, cmds: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        ui.label("regimes:");
        for r in Regime::ALL {
            let mut on = s.regimes.contains(&r);
            if ui.checkbox(&mut on, r.title()).changed() {
                if on {
                    s.regimes.push(r);
                    s.regimes.sort();
                } else {
                    s.regimes.retain(|x| *x != r);
                }
            }
        }
    });
    // Sliders do not wrap inside a wrapping row (each is a row of its own), so the rows are
    // short enough for a 1024-pixel window.
    ui.horizontal(|ui| {
        ui.label("target classes");
        ui.add(egui::TextEdit::singleline(&mut s.target_classes).desired_width(110.0));
        ui.label("source classes (transfer)");
        ui.add(egui::TextEdit::singleline(&mut s.source_classes).desired_width(110.0));
    });
    ui.horizontal(|ui| {
        ui.label("labels per class");
        ui.add(egui::TextEdit::singleline(&mut s.labels).desired_width(100.0));
        ui.add(egui::Slider::new(&mut s.noise, 0.0..=0.9).text("weak-label noise"));
    });
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut s.head_lr_mult, 1.0..=100.0).logarithmic(true).text("head LR x"));
        ui.add(egui::Slider::new(&mut s.freeze_epochs, 0..=10).text("head-only epochs first"));
    });
    ui.horizontal(|ui| {
        ui.add(egui::DragValue::new(&mut s.label_cost).range(0.0..=1e6).prefix("cost per label ").speed(1.0));
        ui.add(egui::Slider::new(&mut s.target_accuracy, 0.5..=0.99).text("target accuracy"));
        ui.add(egui::DragValue::new(&mut s.seed).prefix("seed "));
    });
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut s.pretrain_epochs, 1..=10).text("pre-training epochs"));
        ui.add(egui::Slider::new(&mut s.test_limit, 100..=5000).logarithmic(true).text("held-out images"));
    });
    if let Err(e) = s.labels_per_class().and_then(|_| s.classes()) {
        ui.colored_label(egui::Color32::from_rgb(200, 60, 40), e);
    }
    ui.horizontal(|ui| {
        let running = view.is_running();
        if ui.add_enabled(!running, egui::Button::new("Train the regimes")).clicked() {
            cmds.push(Command::Pretrain(PretrainCommand::Train));
        }
        if ui.add_enabled(running, egui::Button::new("Cancel pre-training")).clicked() {
            cmds.push(Command::Pretrain(PretrainCommand::Cancel));
        }
        if ui.button("Open a lab…").on_hover_text("a folder written by easel transfer or this view").clicked() {
            cmds.push(Command::Pick(Pick::PretrainLab));
        }
    });
}

fn live_ui(ui: &mut egui::Ui, view: &PretrainView) {
    if let Some(s) = &view.stage {
        ui.label(format!("now: {s}"));
    }
    ui.label("training accuracy per epoch, each run");
    Plot::new("pretrain_live")
        .height(140.0)
        .include_y(0.0)
        .include_y(1.0)
        .legend(Legend::default())
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .show(ui, |p| {
            for ((regime, n), acc) in &view.live {
                let pts: Vec<[f64; 2]> = acc.iter().enumerate().map(|(e, a)| [(e + 1) as f64, *a]).collect();
                p.line(Line::new(format!("{} · {n}", regime.name()), PlotPoints::from(pts)).color(colour(*regime)));
            }
        });
}

/// "To reach 85 %: scratch needs ~N labels ($X), weak pre-training ~M ($Y)".
fn sentence(to: &[LabelsToReach], target: f64, cost: f64) -> String {
    let parts: Vec<String> = to
        .iter()
        .filter(|t| (t.target_accuracy - target).abs() < 1e-9)
        .map(|t| match (t.labels, t.labels_per_class) {
            (Some(l), Some(n)) => format!("{} {}{n:.0} per class, {l:.0} labels ({:.0})", t.regime.name(), if t.at_most { "at most " } else { "~" }, l * cost),
            _ => format!("{} does not get there", t.regime.name()),
        })
        .collect();
    format!("To reach {:.0} %: {}.", target * 100.0, parts.join("; "))
}

fn story_ui(ui: &mut egui::Ui, view: &PretrainView, s: &PretrainSettings, cmds: &mut Vec<Command>) {
    if view.results.is_empty() {
        ui.label("Train the regimes, or open a lab written by easel transfer.");
        return;
    }
    ui.heading("Accuracy against labelled images per class");
    let mut regimes: Vec<Regime> = view.results.iter().map(|r| r.regime).collect();
    regimes.sort();
    regimes.dedup();
    ui.horizontal_wrapped(|ui| {
        for &r in &regimes {
            let (swatch, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, colour(r));
            ui.colored_label(colour(r), r.title());
        }
    });
    // the y axis starts a little below the worst result, so the gaps between regimes show
    let lowest = view.results.iter().map(|r| r.test_accuracy).fold(1.0f64, f64::min);
    Plot::new("pretrain_story")
        .height(220.0)
        .include_y(((lowest - 0.05) * 20.0).floor() / 20.0)
        .include_y(1.0)
        .x_axis_label("labels per class (log scale)")
        .y_axis_label("held-out accuracy")
        .x_axis_formatter(|m, _| format!("{:.0}", 10f64.powf(m.value)))
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .show(ui, |p| {
            for &r in &regimes {
                let mut pts: Vec<[f64; 2]> =
                    view.results.iter().filter(|x| x.regime == r).map(|x| [(x.labels_per_class as f64).log10(), x.test_accuracy]).collect();
                pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
                p.line(Line::new(r.name(), PlotPoints::from(pts.clone())).color(colour(r)).width(2.0));
                p.points(Points::new(r.name(), PlotPoints::from(pts)).color(colour(r)).radius(3.0));
            }
        });
    if let Some(sum) = &view.summary {
        ui.strong(sentence(&sum.labels_to_reach, s.target_accuracy, s.label_cost));
        ui.small(format!("at {} a label, {} classes", s.label_cost, sum.classes.len()));
    }
    egui::Grid::new("pretrain_table").striped(true).show(ui, |ui| {
        for h in ["regime", "labels / class", "accuracy", "balanced", "seconds", ""] {
            ui.strong(h);
        }
        ui.end_row();
        for r in &view.results {
            ui.label(r.regime.name());
            ui.label(format!("{}", r.labels_per_class));
            ui.label(format!("{:.4}", r.test_accuracy));
            ui.label(format!("{:.4}", r.balanced_accuracy));
            ui.label(format!("{:.1}", r.seconds));
            if view.dir().is_some() && ui.small_button("open model").on_hover_text("in the Dataset and Explain views").clicked() {
                cmds.push(Command::Pretrain(PretrainCommand::OpenModel(r.regime, r.labels_per_class)));
            }
            ui.end_row();
        }
    });
}

fn finetune_ui(ui: &mut egui::Ui, view: &PretrainView, cmds: &mut Vec<Command>) {
    ui.heading("Fine-tune on a folder");
    ui.label("A class-per-folder tree of your own classes: the open model gets a new output layer for them, trained on features computed once (seconds), with a fifth of the images held out.");
    ui.horizontal(|ui| {
        if ui.add_enabled(!view.is_finetuning(), egui::Button::new("Fine-tune on a folder…")).clicked() {
            cmds.push(Command::Pick(Pick::FinetuneFolder));
        }
        if let Some(s) = &view.finetune_stage {
            ui.label(format!("now: {s}"));
        }
    });
    if let Some(o) = &view.finetuned {
        ui.label(format!("{} classes {:?}: held-out accuracy {:.3} on {} images", o.classes.len(), o.classes, o.test_accuracy, o.test_images));
        if ui.button("Open the fine-tuned model").clicked() {
            cmds.push(Command::OpenModel(o.card.clone()));
        }
    }
}
