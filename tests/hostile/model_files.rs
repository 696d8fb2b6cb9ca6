//! The hostile corpus's model files: weights in every container (valid, broken, lying), pickles
//! that reach outside the allow-list, and model cards (broken, oversized, weights outside the
//! card's folder). The harness that runs them is `tests/hostile.rs`.

use std::path::Path;

use super::files::*;
#[cfg(unix)]
use super::mkfifo;
use super::{Case, Corpus, Expect, common, err, fixture_tensors, s};

fn predict(card: &Path) -> Vec<String> {
    vec!["predict".into(), "--model".into(), s(card).into(), "--images".into(), s(&common::fixture("smallcnn_fashion/input.png")).into()]
}

/// Weights files: valid ones in every container, broken and hostile ones.
pub(super) fn weights_cases(c: &mut Corpus) {
    let tensors = fixture_tensors();
    let weights = |c: &mut Corpus, name: &str, bytes: &[u8], expect: Expect| {
        c.file(&format!("w-{name}/model.bin"), bytes);
        let card = c.card(&format!("w-{name}"), "model.bin", |_| {});
        let args = predict(&card);
        c.cases.push(Case { name: format!("weights: {name}"), args, expect });
    };
    weights(c, "empty", b"", err(&["empty"]));
    weights(c, "noise", &noise(4096, 1), err(&["neither safetensors"]));
    let st = std::fs::read(common::fixture("smallcnn_fashion/weights.safetensors")).unwrap();
    weights(c, "safetensors-truncated", &st[..st.len() / 2], err(&["not a valid safetensors"]));
    let mut huge = st.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    weights(c, "safetensors-header-length-huge", &huge, err(&["neither safetensors"]));
    weights(c, "safetensors-header-not-json", &safetensors_raw("{not json at all}", None, &[0; 16]), err(&["neither safetensors"]));
    weights(
        c,
        "safetensors-offsets-past-end",
        &safetensors_raw(r#"{"fc1.bias":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}}"#, None, &[0; 16]),
        err(&["not a valid safetensors"]),
    );
    weights(
        c,
        "safetensors-shape-overflow",
        &safetensors_raw(r#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#, None, &[0; 16]),
        err(&["not a valid safetensors"]),
    );
    weights(c, "safetensors-unknown-dtype", &safetensors_raw(r#"{"x":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, None, &[0; 4]), err(&["safetensors"]));
    let with = |f: f32| {
        let mut t = tensors.clone();
        t.iter_mut().find(|(n, _, _)| n == "fc1.weight").unwrap().2[7] = f;
        safetensors_with_header_len(&t, 1024)
    };
    weights(c, "nan-weight", &with(f32::NAN), err(&["fc1.weight", "NaN"]));
    weights(c, "infinite-weight", &with(f32::INFINITY), err(&["fc1.weight", "inf"]));
    // valid files whose first bytes look like a pickle or a zip
    weights(c, "safetensors-length-0x80", &safetensors_with_header_len(&tensors, 0x480), Expect::Ok);
    weights(c, "safetensors-length-PK", &safetensors_with_header_len(&tensors, 0x4b50), Expect::Ok);
    weights(c, "pth-zip", &pth_zip(&tensors), Expect::Ok);
    weights(c, "pth-legacy", &pth_legacy(&tensors), Expect::Ok);
    let zip_with = |pickle: Vec<u8>, data: Vec<Entry>| {
        let mut e = vec![Entry::stored("archive/data.pkl", pickle)];
        e.extend(data);
        zip(&e)
    };
    let one = |shape: &[usize]| vec![TensorSpec::contiguous("fc2.bias", "0", shape)];
    weights(
        c,
        "pth-deflate-bomb",
        &zip_with(
            state_dict_pickle(&one(&[10]), false),
            vec![Entry { name: "archive/data/0".into(), data: vec![0; 64 << 20], deflate: true, declared_size: Some(40) }],
        ),
        err(&["larger than its declared"]),
    );
    weights(
        c,
        "pth-storage-size-lie",
        &zip_with(state_dict_pickle(&one(&[10]), false), vec![Entry::stored("archive/data/0", vec![0; 12])]),
        err(&["promises"]),
    );
    weights(c, "pth-promises-terabytes", &zip_with(state_dict_pickle(&one(&[1 << 20, 1 << 20]), false), vec![]), err(&["elements"]));
    let mut strided = one(&[10]);
    strided[0].stride = vec![1000];
    weights(
        c,
        "pth-stride-outside-storage",
        &zip_with(state_dict_pickle(&strided, false), vec![Entry::stored("archive/data/0", vec![0; 40])]),
        err(&["reaches element"]),
    );
    let mut escape = one(&[10]);
    escape[0].storage = "../../etc/passwd".into();
    weights(c, "pth-storage-key-escapes", &zip_with(state_dict_pickle(&escape, false), vec![]), err(&["not a plain name"]));
    weights(c, "pth-zip-without-data-pkl", &zip(&[Entry::stored("archive/version", b"3".to_vec())]), err(&["without a */data.pkl"]));
    weights(
        c,
        "pth-big-endian",
        &zip(&[Entry::stored("archive/data.pkl", state_dict_pickle(&one(&[1]), false)), Entry::stored("archive/byteorder", b"big".to_vec())]),
        err(&["big-endian"]),
    );
    weights(c, "pth-truncated-zip", &pth_zip(&tensors)[..2000], err(&["neither safetensors"]));
    weights(c, "pth-bare-pickle", &Pickle::new().op(b"}").stop(), err(&["no tensor data"]));
}

/// Pickles that name or call anything outside the allow-list, wherever it sits.
pub(super) fn pickle_cases(c: &mut Corpus) {
    let pth = |c: &mut Corpus, name: &str, pickle: Vec<u8>, needles: &[&'static str]| {
        c.file(&format!("p-{name}/model.pth"), &zip(&[Entry::stored("archive/data.pkl", pickle)]));
        let card = c.card(&format!("p-{name}"), "model.pth", |_| {});
        c.cases.push(Case { name: format!("pickle: {name}"), args: predict(&card), expect: err(needles) });
    };
    let call = |m: &str, n: &str, arg: &str| Pickle::new().op(b"}").str("k").global(m, n).str(arg).op(&[0x85]).op(b"Rs").stop();
    pth(c, "os-system", call("os", "system", "touch /tmp/easel-pwned"), &["os.system", "nothing was executed"]);
    pth(c, "posix-system-popped", Pickle::new().op(b"}").global("posix", "system").str("id").op(&[0x85]).op(b"R0").stop(), &["posix.system"]);
    pth(c, "global-popped-unused", Pickle::new().op(b"}").global("subprocess", "Popen").op(b"0").stop(), &["subprocess.Popen"]);
    pth(c, "torch-serialization-os", Pickle::new().op(b"}").global("torch.serialization", "os").op(b"0").stop(), &["torch.serialization.os"]);
    pth(c, "torch-hub-load", call("torch.hub", "load", "evil/repo"), &["torch.hub.load"]);
    pth(c, "torch-load", call("torch", "load", "x"), &["torch.load"]);
    pth(c, "numpy-load", call("numpy", "load", "x"), &["numpy.load"]);
    pth(c, "numpy-reconstruct", call("numpy.core.multiarray", "_reconstruct", "x"), &["numpy.core.multiarray._reconstruct"]);
    pth(c, "builtins-eval", call("builtins", "eval", "1"), &["builtins.eval"]);
    pth(c, "builtins-getattr", call("builtins", "getattr", "x"), &["builtins.getattr"]);
    pth(c, "runpy", call("runpy", "_run_code", "x"), &["runpy._run_code"]);
    let mut sg = Pickle::new().op(b"}").op(&[0x8c, 19]).op(b"torch.serialization").op(&[0x94, 0x8c, 2]).op(b"os").op(&[0x93]).op(b"0").stop();
    sg[1] = 4;
    pth(c, "stack-global-from-memo", sg, &["torch.serialization.os"]);
    pth(c, "inst-os-system", Pickle::new().op(b"(").str("id").op(b"ios\nsystem\n").stop(), &["os.system"]);
    pth(c, "reduce-on-storage-type", Pickle::new().global("torch", "FloatStorage").op(b")R").stop(), &["REDUCE on torch.FloatStorage"]);
    pth(c, "newobj-on-size", Pickle::new().global("torch", "Size").op(b")").op(&[0x81]).stop(), &["NEWOBJ on torch.Size"]);
    pth(c, "build-on-number", Pickle::new().op(b"K\x01}b").stop(), &["BUILD"]);
    pth(c, "ext-opcode", Pickle::new().op(&[0x82, 1]).stop(), &["extension registry"]);
    pth(c, "no-stop", Pickle::new().op(b"}").0, &["no STOP"]);
    pth(c, "stack-underflow", Pickle::new().op(b"s").stop(), &["underflow"]);
    pth(c, "memo-unset", Pickle::new().op(b"h\x09").stop(), &["memo entry 9"]);
    pth(c, "unknown-opcode", Pickle::new().op(&[0xfe]).stop(), &["unknown pickle opcode"]);
    let mut deep = Pickle::new();
    for i in 0..100 {
        deep = deep.op(b"}").str(&format!("d{i}"));
    }
    for _ in 0..100 {
        deep = deep.op(b"}").op(b"s");
    }
    pth(c, "dicts-nested-deep", deep.op(b"s").stop(), &["nested"]);
    pth(c, "long4-length-lie", Pickle::new().op(&[0x8b, 0xff, 0xff, 0xff, 0x7f]).stop(), &["truncated pickle"]);
}

/// Model cards: broken, oversized, and weights paths outside the card's folder.
pub(super) fn card_cases(c: &mut Corpus) {
    let st = std::fs::read(common::fixture("smallcnn_fashion/weights.safetensors")).unwrap();
    let card = |c: &mut Corpus, name: &str, edit: &dyn Fn(&mut serde_json::Value), expect: Expect| {
        c.file(&format!("c-{name}/weights.safetensors"), &st);
        let card = c.card(&format!("c-{name}"), "weights.safetensors", edit);
        c.cases.push(Case { name: format!("card: {name}"), args: predict(&card), expect });
    };
    card(c, "valid", &|_| {}, Expect::Ok);
    card(c, "negative-std", &|v| v["input"]["std"] = serde_json::json!([-0.5]), err(&["input.std"]));
    card(c, "zero-scale", &|v| v["input"]["scale"] = serde_json::json!(0.0), err(&["input.scale"]));
    card(c, "huge-input", &|v| v["input"]["width"] = serde_json::json!(100000), err(&["out of range"]));
    card(
        c,
        "100k-classes",
        &|v| {
            v["classes"] = serde_json::json!((0..100_000).map(|i| format!("c{i}")).collect::<Vec<_>>());
            v["architecture"]["num_classes"] = serde_json::json!(100_000);
        },
        err(&["100000 classes", "4096"]),
    );
    card(c, "hidden-layer-of-a-billion", &|v| v["architecture"]["hidden"] = serde_json::json!([1_000_000_000u64]), err(&["larger than easel handles"]));
    card(c, "conv-channels-overflow", &|v| v["architecture"]["convs"][0]["out_channels"] = serde_json::json!(u64::MAX), err(&["larger than easel handles"]));
    card(c, "wrong-format", &|v| v["format"] = "easel-model-card/99".into(), err(&["format"]));
    card(c, "no-classes", &|v| v["classes"] = serde_json::json!([]), err(&["no classes"]));
    let e = c.file("c-empty/card.json", b"");
    c.case("card: empty", &predict(&e).iter().map(String::as_str).collect::<Vec<_>>(), err(&["empty"]));
    let g = c.file("c-garbage/card.json", &noise(300, 7));
    c.case("card: garbage", &predict(&g).iter().map(String::as_str).collect::<Vec<_>>(), err(&["card.json"]));
    let dir = c.inputs.join("c-folder-without-card");
    std::fs::create_dir_all(&dir).unwrap();
    c.case("card: folder without a card", &predict(&dir).iter().map(String::as_str).collect::<Vec<_>>(), err(&["no card.json"]));
    // weights outside the card's folder
    c.file("outside.safetensors", &st);
    let card_up = c.card("c-parent", "../outside.safetensors", |_| {});
    c.case(
        "card: weights in the parent folder",
        &predict(&card_up).iter().map(String::as_str).collect::<Vec<_>>(),
        err(&["outside the card's folder", "--allow-outside"]),
    );
    let mut allowed = predict(&card_up);
    allowed.push("--allow-outside".into());
    c.case("card: weights in the parent folder, allowed", &allowed.iter().map(String::as_str).collect::<Vec<_>>(), Expect::Ok);
    let abs = c.inputs.join("outside.safetensors");
    let card_abs = c.card("c-absolute", s(&abs), |_| {});
    c.case("card: absolute weights path", &predict(&card_abs).iter().map(String::as_str).collect::<Vec<_>>(), err(&["outside the card's folder"]));
    #[cfg(unix)]
    {
        std::fs::create_dir_all(c.inputs.join("c-symlink")).unwrap();
        std::os::unix::fs::symlink(&abs, c.inputs.join("c-symlink/weights.safetensors")).unwrap();
        let card_link = c.card("c-symlink", "weights.safetensors", |_| {});
        c.case(
            "card: weights symlinked from outside",
            &predict(&card_link).iter().map(String::as_str).collect::<Vec<_>>(),
            err(&["outside the card's folder"]),
        );
        let card_dev = c.card("c-device", "/dev/zero", |_| {});
        let mut dev = predict(&card_dev);
        dev.push("--allow-outside".into());
        c.case("card: weights are /dev/zero", &dev.iter().map(String::as_str).collect::<Vec<_>>(), err(&["a device"]));
        std::fs::create_dir_all(c.inputs.join("c-fifo")).unwrap();
        mkfifo(&c.inputs.join("c-fifo/weights.safetensors"));
        let card_fifo = c.card("c-fifo", "weights.safetensors", |_| {});
        c.case("card: weights are a FIFO", &predict(&card_fifo).iter().map(String::as_str).collect::<Vec<_>>(), err(&["FIFO"]));
        mkfifo(&c.inputs.join("card-fifo.json"));
        let f = c.inputs.join("card-fifo.json");
        c.case("card: the card is a FIFO", &predict(&f).iter().map(String::as_str).collect::<Vec<_>>(), err(&["FIFO"]));
    }
    std::fs::create_dir_all(c.inputs.join("c-weights-folder/weights.safetensors")).unwrap();
    let card_dir = c.card("c-weights-folder", "weights.safetensors", |_| {});
    c.case("card: weights are a folder", &predict(&card_dir).iter().map(String::as_str).collect::<Vec<_>>(), err(&["a folder"]));
}
