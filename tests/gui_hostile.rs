//! Hostile files opened in the app (`egui_kittest`, no display): each raises the banner with
//! the library's message, and the app keeps the model it had and keeps working.

#[path = "hostile/files.rs"]
mod files;
#[path = "common/gui.rs"]
mod gui_common;

use easel_app::command::Command;
use easel_app::state::Demo;
use egui_kittest::kittest::Queryable;
use gui_common::*;

#[test]
fn a_malicious_pickle_a_card_pointing_outside_and_a_truncated_jpeg_each_raise_the_banner() {
    let dir = scratch("hostile-gui");
    let pickle = files::Pickle::new().op(b"}").str("k").global("torch.hub", "load").str("evil/repo").op(&[0x85]).op(b"Rs").stop();
    std::fs::create_dir_all(dir.join("evil")).unwrap();
    std::fs::write(dir.join("evil/model.pth"), files::zip(&[files::Entry::stored("archive/data.pkl", pickle)])).unwrap();
    let card_text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smallcnn_fashion/card.json")).unwrap();
    let mut card: serde_json::Value = serde_json::from_str(&card_text).unwrap();
    card["weights"] = "model.pth".into();
    std::fs::write(dir.join("evil/card.json"), card.to_string()).unwrap();
    std::fs::create_dir_all(dir.join("outside")).unwrap();
    card["weights"] = "../evil/model.pth".into();
    std::fs::write(dir.join("outside/card.json"), card.to_string()).unwrap();
    let jpg = files::jpeg(64, 48);
    std::fs::write(dir.join("cut.jpg"), &jpg[..jpg.len() / 2]).unwrap();

    let mut h = harness(Demo::Fashion, "hostile-gui-cache");
    wait_for(&mut h, "the demo", 60, |a| map_of(a).is_some());
    let before = h.state().session.model.as_ref().map(|m| m.hash.clone());
    for (command, needle) in [
        (Command::OpenModel(dir.join("evil/card.json")), "torch.hub.load"),
        (Command::OpenModel(dir.join("outside/card.json")), "outside the card's folder"),
        (Command::OpenImages(vec![dir.join("cut.jpg")]), "truncated JPEG"),
    ] {
        h.state_mut().commands.push(command);
        h.step();
        wait_for(&mut h, needle, 30, |a| !a.notes.errors.is_empty());
        let _banner = h.get_by_label_contains(needle);
        h.get_by_label("Dismiss").click();
        h.step();
        assert!(h.state().notes.errors.is_empty());
        assert_eq!(h.state().session.model.as_ref().map(|m| m.hash.clone()), before, "the loaded model is kept");
    }
    // still working: the other demo loads and explains
    h.get_by_label("Photos (EfficientNet)").click();
    wait_for(&mut h, "the photos", 120, |a| a.session.images.len() == 4 && map_of(a).is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
