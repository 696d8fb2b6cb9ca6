//! Property tests on the parsers of untrusted files: every input either parses or is an error,
//! never a panic; valid files of any shape load; CSVs round-trip. Bounded: a few seconds each.

use std::path::{Path, PathBuf};

use easel_core::metrics::{CostMatrix, Predictions};
use proptest::prelude::*;

fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!("easel-parsers-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Clone, Debug)]
struct RandomTensor {
    name: String,
    shape: Vec<usize>,
    dtype: safetensors::Dtype,
    seed: u64,
}

fn dtype() -> impl Strategy<Value = safetensors::Dtype> {
    use safetensors::Dtype as D;
    prop_oneof![Just(D::F32), Just(D::F16), Just(D::BF16), Just(D::F64), Just(D::I64), Just(D::I32), Just(D::U8)]
}

fn tensor() -> impl Strategy<Value = RandomTensor> {
    // names of any characters JSON can hold, including quotes, slashes and non-ASCII
    ("[a-zA-Z0-9_./:\"\\\\ \u{e9}\u{4e2d}-]{1,24}", prop::collection::vec(0usize..5, 0..4), dtype(), any::<u64>())
        .prop_map(|(name, shape, dtype, seed)| RandomTensor { name, shape, dtype, seed })
}

/// Element bytes whose values are exact in float32.
fn element_bytes(dtype: safetensors::Dtype, i: u64) -> Vec<u8> {
    use safetensors::Dtype as D;
    let v = (i % 200) as f32 - 100.0;
    match dtype {
        D::F32 => v.to_le_bytes().to_vec(),
        D::F64 => (v as f64).to_le_bytes().to_vec(),
        D::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
        D::BF16 => half::bf16::from_f32(v).to_le_bytes().to_vec(),
        D::I64 => (v as i64).to_le_bytes().to_vec(),
        D::I32 => (v as i32).to_le_bytes().to_vec(),
        _ => vec![(i % 200) as u8],
    }
}

fn expected_value(dtype: safetensors::Dtype, i: u64) -> f32 {
    if dtype == safetensors::Dtype::U8 { (i % 200) as f32 } else { (i % 200) as f32 - 100.0 }
}

fn write_safetensors(dir: &Path, tensors: &[RandomTensor], pad: usize) -> PathBuf {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| {
            let n: usize = t.shape.iter().product();
            (0..n as u64).flat_map(|i| element_bytes(t.dtype, t.seed.wrapping_add(i))).collect()
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        tensors.iter().zip(&data).map(|(t, d)| (t.name.clone(), safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), d).unwrap())).collect();
    let meta = std::collections::HashMap::from([("pad".to_string(), "x".repeat(pad))]);
    let bytes = safetensors::serialize(views, Some(meta)).unwrap();
    let p = dir.join("w.safetensors");
    std::fs::write(&p, bytes).unwrap();
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// 1,000 valid safetensors files with random tensor names, shapes, element types and
    /// header lengths (so the first bytes are anything, 0x80 and "PK" included) all load.
    #[test]
    fn valid_safetensors_files_all_load(tensors in prop::collection::vec(tensor(), 1..5), pad in 0usize..600) {
        let mut tensors = tensors;
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        tensors.dedup_by(|a, b| a.name == b.name);
        tensors.retain(|t| t.name != "__metadata__");
        prop_assume!(!tensors.is_empty());
        let dir = scratch("st");
        let p = write_safetensors(&dir, &tensors, pad);
        let read = easel_core::weights::read_tensors(&p);
        let _ = std::fs::remove_dir_all(&dir);
        let map = read.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(map.tensors.len(), tensors.len());
        for t in &tensors {
            let got = &map.tensors[&t.name];
            prop_assert_eq!(&got.shape, &t.shape);
            for (i, v) in got.data.iter().enumerate() {
                prop_assert_eq!(*v, expected_value(t.dtype, t.seed.wrapping_add(i as u64)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// A valid file with bytes changed, cut or appended is read or refused, never a panic.
    #[test]
    fn damaged_weights_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8), cut in any::<prop::sample::Index>(), tail in prop::collection::vec(any::<u8>(), 0..16)) {
        let dir = scratch("damaged");
        let t = RandomTensor { name: "w".into(), shape: vec![3, 2], dtype: safetensors::Dtype::F32, seed: 1 };
        let p = write_safetensors(&dir, &[t], 7);
        let mut bytes = std::fs::read(&p).unwrap();
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        bytes.truncate(cut.index(bytes.len() + 1).max(1));
        bytes.extend(tail);
        std::fs::write(&p, &bytes).unwrap();
        let _ = easel_core::weights::read_tensors(&p);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Any bytes, starting like a zip, a pickle or nothing in particular, as a weights file.
    #[test]
    fn random_weights_files_never_panic(head in prop_oneof![Just(b"PK\x03\x04".to_vec()), Just(vec![0x80u8, 2]), Just(vec![0x80u8, 4, 0x95]), Just(Vec::new())], body in prop::collection::vec(any::<u8>(), 0..400)) {
        let dir = scratch("random");
        let p = dir.join("w.pth");
        std::fs::write(&p, [head, body].concat()).unwrap();
        let r = easel_core::weights::read_tensors(&p);
        let _ = std::fs::remove_dir_all(&dir);
        prop_assert!(r.is_err());
    }

    #[test]
    fn npy_parser_never_panics(version in 1u8..4, header in "[ -~]{0,120}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend([version, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        if version > 1 {
            bytes.extend([0, 0]);
        }
        bytes.extend(header.as_bytes());
        bytes.extend(body);
        if let Ok(a) = easel_core::npy::parse_npy(&bytes) {
            prop_assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
        }
    }

    #[test]
    fn npy_shapes_that_overflow_are_errors(dims in prop::collection::vec(any::<u32>(), 1..6)) {
        let shape = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape},), }}");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 16]);
        if let Ok(a) = easel_core::npy::parse_npy(&bytes) {
            prop_assert_eq!(a.shape.iter().product::<usize>(), a.data.len());
        }
    }

    #[test]
    fn idx_files_never_panic(images in prop::collection::vec(any::<u8>(), 0..200), labels in prop::collection::vec(any::<u8>(), 0..40), gz in any::<bool>()) {
        let dir = scratch("idx");
        let (pi, pl) = (dir.join("i"), dir.join("l"));
        let enc = |b: &[u8]| if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b).unwrap();
            e.finish().unwrap()
        } else { b.to_vec() };
        // a real header half of the time, so the parser gets past the magic number
        let mut img = if images.len() % 2 == 0 { vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3] } else { Vec::new() };
        img.extend(&images);
        std::fs::write(&pi, enc(&img)).unwrap();
        std::fs::write(&pl, enc(&[vec![0, 0, 8, 1, 0, 0, 0, 2], labels].concat())).unwrap();
        let classes: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let r = easel_core::data::idx::load_idx_pair(&pi, &pl, &classes);
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok(set) = r {
            prop_assert_eq!(set.pixels.len(), set.len() * set.image_len());
            prop_assert!(!set.is_empty());
        }
    }

    /// Paths with commas, quotes, CR and LF survive a write and a read.
    #[test]
    fn predictions_csv_round_trips(rows in prop::collection::vec(("[a-z,\"\r\n \u{e9}/]{0,12}", 0usize..3, 0u32..1000), 1..8)) {
        let classes: Vec<String> = (0..3).map(|i| format!("c{i}")).collect();
        let paths: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let labels: Vec<usize> = rows.iter().map(|r| r.1).collect();
        let probs: Vec<Vec<f32>> = rows.iter().map(|r| { let a = r.2 as f32 / 2000.0; vec![a, 0.5 - a / 2.0, 0.5 - a / 2.0] }).collect();
        let p = Predictions::from_probs(classes.clone(), paths.clone(), labels.clone(), probs);
        let back = Predictions::parse_csv(&p.to_csv(), Path::new("p.csv"), Some(&classes)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.paths, paths);
        prop_assert_eq!(back.labels, labels);
    }

    #[test]
    fn predictions_csv_parser_never_panics(text in "[a-z0-9,.\"\r\n#-]{0,200}", header in any::<bool>()) {
        let text = if header { format!("path,label,p0,p1\n{text}") } else { text };
        if let Ok(p) = Predictions::parse_csv(&text, Path::new("p.csv"), None) {
            prop_assert!(!p.is_empty());
            prop_assert!(p.labels.iter().chain(&p.preds).all(|&l| l < p.k()));
        }
    }

    #[test]
    fn cost_csv_parser_never_panics(text in "[0-9a-z,.\"\r\n# -]{0,200}", k in 1usize..5) {
        if let Ok(c) = CostMatrix::parse_csv(&text, Path::new("c.csv"), k) {
            prop_assert_eq!(c.k(), k);
            prop_assert!(c.costs.iter().all(|r| r.len() == k && r.iter().all(|v| v.is_finite() && *v >= 0.0)));
        }
    }

    /// A card with any field replaced by any JSON value is loaded or refused, and a loaded one
    /// holds numbers a model can use.
    #[test]
    fn cards_never_panic(field in prop::sample::select(vec!["input.std", "input.mean", "input.scale", "input.width", "input.channels", "classes", "architecture.num_classes", "architecture.hidden", "architecture.convs", "weights", "format"]), value in json_value()) {
        let dir = scratch("card");
        let mut card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture_card()).unwrap()).unwrap();
        let mut at = &mut card;
        let parts: Vec<&str> = field.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = &mut at[*part];
        }
        at[parts[parts.len() - 1]] = value;
        let p = dir.join("card.json");
        std::fs::write(&p, serde_json::to_string(&card).unwrap()).unwrap();
        let r = easel_core::card::ModelCard::load(&p);
        let _ = std::fs::remove_dir_all(&dir);
        if let Ok((c, _)) = r {
            prop_assert!(c.input.std.iter().all(|s| s.is_finite() && *s > 0.0));
            prop_assert!(c.classes.len() <= easel_core::card::MAX_CLASSES);
        }
    }
}

fn fixture_card() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/smallcnn_fashion/card.json")
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
        Just(json!([])),
        Just(json!([0.0])),
        Just(json!([-1.0])),
        Just(json!(["a", 1])),
        Just(json!({})),
        Just(json!("../../etc/passwd")),
        any::<i64>().prop_map(|v| json!(v)),
        any::<f32>().prop_filter("JSON has no NaN", |v| v.is_finite()).prop_map(|v| json!([v])),
        "[a-z]{0,8}".prop_map(|s| json!(s)),
    ]
}
