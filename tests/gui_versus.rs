//! Model A against model B in the app, under `egui_kittest`: the Dataset view's versus panel
//! shows the 2x2 table, the verdict and both galleries; a gallery tile opens the Compare
//! view with both models' predictions and maps side by side on one scale.

#[path = "common/gui.rs"]
mod gui_common;
#[path = "common/models.rs"]
mod models;

use easel_app::command::Command;
use easel_app::state::{Demo, Tab};
use easel_core::metrics::versus::Side;
use egui_kittest::kittest::Queryable;
use gui_common::*;

#[test]
fn the_versus_panel_shows_the_table_and_both_galleries_and_a_tile_opens_both_maps() {
    let b = models::shifted_demo_model(&scratch("versus-b"), 6, 2.0);
    let mut h = harness(Demo::Fashion, "versus");
    wait_for(&mut h, "the demo", 60, |a| a.session.images.len() == 10_000 && map_of(a).is_some());
    h.get_by_label("Dataset").click();
    wait_for(&mut h, "the evaluation", 120, |a| a.dataset.figures.is_some());
    let _ = h.get_by_label("A versus B");
    h.state_mut().commands.push(Command::OpenSecondModel(b));
    wait_for(&mut h, "the comparison", 120, |a| a.dataset.versus.report.is_some());
    assert!(h.state().notes.errors.is_empty(), "{:?}", h.state().notes.errors);
    let r = h.state().dataset.versus.report.clone().unwrap();
    assert_eq!(r.samples, 10_000);
    assert_eq!(r.both_right + r.a_only + r.b_only + r.both_wrong, 10_000);
    assert!(r.a_only > 0 && r.b_only > 0, "B (more Shirts) is right and wrong on other images than A: {r:?}");
    // the Shirt-biased B finds more Shirts
    assert!(r.per_class[6].delta > 0.0);

    // the 2x2 table, the verdict and the per-class deltas' header
    for label in ["A right", "A wrong", "B right", "B wrong"] {
        let _ = h.get_by_label(label);
    }
    for n in [r.both_right, r.a_only, r.b_only, r.both_wrong] {
        assert!(h.get_all_by_label(&n.to_string()).count() >= 1, "{n} is in the table");
    }
    let _ = h.get_by_label(&r.verdict);
    assert!(r.verdict.contains("arises by chance with p ="), "{}", r.verdict);
    let _ = h.get_by_label("Recall by class, A and B");

    // both galleries, with their tiles
    for side in [Side::AOnly, Side::BOnly] {
        let n = h.state().dataset.versus.gallery(side).indices.len();
        let _ = h.get_by_label_contains(&format!("{}: {n} images", side.title()));
    }
    assert_eq!(h.state().dataset.versus.a_only.indices.len(), r.a_only);
    assert_eq!(h.state().dataset.versus.b_only.indices.len(), r.b_only);
    wait_for(&mut h, "the thumbnails", 30, |a| !a.dataset.versus.b_only.job.is_running() && !a.dataset.versus.b_only.thumbnails.is_empty());
    let i = h.state().dataset.versus.b_only.indices[0];
    let label = h.state().dataset.predictions.as_ref().unwrap().labels[i];

    // a tile opens both models' maps of that image, on one scale, for its true class
    h.get_by_label(&format!("B right, A wrong #{i}")).click();
    wait_for(&mut h, "the side-by-side maps", 60, |a| a.compare.pair.shown(a.session.generation()).is_some());
    let app = h.state();
    assert_eq!(app.state.tab, Tab::Compare);
    assert_eq!(app.session.current.as_ref().unwrap().index, i);
    let pair = &app.compare.pair.shown(app.session.generation()).unwrap().output;
    assert_eq!(pair.target, label, "both maps explain the true class");
    assert_eq!(pair.a.explanation.target, pair.b.explanation.target);
    assert_eq!(pair.a.scale, pair.scale);
    assert_eq!(pair.b.scale, pair.scale);
    assert_ne!(pair.a.meta.model_hash, pair.b.meta.model_hash);
    // B is right on this image and A is not
    assert_eq!(pair.b.top[0].class_index, label);
    assert_ne!(pair.a.top[0].class_index, label);
    let _ = h.get_by_label_contains("A · Fashion-MNIST small CNN (demo)");
    let _ = h.get_by_label_contains("B · Fashion-MNIST small CNN, class 6 bias +2 (B)");
    let _ = h.get_by_label_contains("for both models · one scale up to");
}
