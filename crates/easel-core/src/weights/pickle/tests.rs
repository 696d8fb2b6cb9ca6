//! The pickle reader on hand-made streams and on random opcode streams (proptest).

use super::*;

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

#[test]
fn the_allow_list_is_exact() {
    assert_eq!(allowed("torch._utils", "_rebuild_tensor_v2"), Some(Global::RebuildTensorV2));
    assert_eq!(allowed("torch", "FloatStorage"), Some(Global::Storage(DType::F32)));
    assert_eq!(allowed("torch", "float16"), Some(Global::Dtype(DType::F16)));
    for (m, n) in [
        ("torch.serialization", "os"),
        ("torch.hub", "load"),
        ("torch", "load"),
        ("numpy", "load"),
        ("os", "system"),
        ("torch._utils", "_rebuild_qtensor"),
        ("collections", "Counter"),
    ] {
        assert_eq!(allowed(m, n), None, "{m}.{n}");
    }
}

#[test]
fn a_foreign_global_is_refused_even_when_popped() {
    let mut p = vec![0x80, 2, b'}'];
    p.extend(global("os", "system"));
    p.extend([b'0', b'.']);
    let e = load(&p, Storages::Zip).unwrap_err();
    assert!(e.contains("os.system"), "{e}");
    // and a STACK_GLOBAL built from memoised strings
    let mut p = vec![0x80, 4, b'}', 0x8c, 19];
    p.extend(b"torch.serialization");
    p.extend([0x94, 0x8c, 2]);
    p.extend(b"os");
    p.extend([0x93, b'0', b'.']);
    let e = load(&p, Storages::Zip).unwrap_err();
    assert!(e.contains("torch.serialization.os"), "{e}");
}

#[test]
fn calls_on_allowed_types_outside_their_use_are_refused() {
    let mut p = vec![0x80, 2];
    p.extend(global("torch", "FloatStorage"));
    p.extend([b')', b'R', b'.']);
    assert!(load(&p, Storages::Zip).unwrap_err().contains("REDUCE on torch.FloatStorage"));
    let p = [0x80, 2, b'K', 1, b'}', b'b', b'.'];
    assert!(load(&p, Storages::Zip).unwrap_err().contains("BUILD"));
}

use proptest::prelude::*;

/// One opcode with plausible arguments, or a few random bytes.
fn opcode() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![6 => whole_opcode(), 1 => prop::collection::vec(any::<u8>(), 1..6)]
}

/// One whole opcode with plausible arguments (never STOP), so random streams get deep into
/// the machine and stay aligned.
fn whole_opcode() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        b"(".to_vec(),
        b")".to_vec(),
        b"}".to_vec(),
        b"]".to_vec(),
        b"t".to_vec(),
        b"l".to_vec(),
        b"d".to_vec(),
        b"s".to_vec(),
        b"u".to_vec(),
        b"a".to_vec(),
        b"e".to_vec(),
        b"R".to_vec(),
        b"b".to_vec(),
        b"Q".to_vec(),
        b"0".to_vec(),
        b"1".to_vec(),
        b"2".to_vec(),
        b"N".to_vec(),
        vec![0x85],
        vec![0x86],
        vec![0x87],
        vec![0x88],
        vec![0x89],
        vec![0x81],
        vec![0x92],
        vec![0x93],
        vec![0x94],
        vec![0x8f],
        vec![0x90],
        vec![0x91],
        b"ccollections\nOrderedDict\n".to_vec(),
        b"ctorch._utils\n_rebuild_tensor_v2\n".to_vec(),
        b"ctorch\nFloatStorage\n".to_vec(),
        b"ctorch._utils\n_rebuild_parameter\n".to_vec(),
        b"ctorch\nSize\n".to_vec(),
        b"X\x07\x00\x00\x00storage".to_vec(),
        b"X\x01\x00\x00\x000".to_vec(),
        b"X\x03\x00\x00\x00cpu".to_vec(),
        b"I01\n".to_vec(),
        b"F1.5\n".to_vec(),
        b"p3\n".to_vec(),
        b"g3\n".to_vec(),
    ]);
    prop_oneof![
        4 => fixed,
        1 => (0u8..=255).prop_map(|v| vec![b'K', v]),
        1 => any::<i32>().prop_map(|v| [vec![b'J'], v.to_le_bytes().to_vec()].concat()),
        1 => (0u8..8).prop_map(|k| vec![b'q', k]),
        1 => (0u8..8).prop_map(|k| vec![b'h', k]),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| [vec![0x8a, b.len() as u8], b].concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random opcode streams are read or refused, never a panic; what is read is bounded.
    #[test]
    fn random_opcode_streams_never_panic(ops in prop::collection::vec(opcode(), 0..60), zip in any::<bool>()) {
        let mut p = vec![0x80, 2];
        p.extend(ops.concat());
        p.push(b'.');
        let mode = if zip { Storages::Zip } else { Storages::Legacy };
        if let Ok((root, arena, used)) = load(&p, mode) {
            prop_assert!(used <= p.len());
            let _ = state_dict_tensors(&root, &arena);
        }
    }

    /// A foreign global anywhere in a stream is refused, whatever surrounds it.
    #[test]
    fn a_foreign_global_anywhere_is_refused(before in prop::collection::vec(whole_opcode(), 0..30), after in prop::collection::vec(opcode(), 0..30), which in 0usize..4) {
        let foreign = [&b"cos\nsystem\n"[..], b"ctorch.hub\nload\n", b"cnumpy\nload\n", b"ctorch.serialization\nos\n"][which];
        let mut p = vec![0x80, 2];
        p.extend(before.concat());
        p.extend(foreign);
        p.extend(after.concat());
        p.push(b'.');
        prop_assert!(load(&p, Storages::Zip).is_err());
    }
}

#[test]
fn a_state_dict_with_one_tensor_reads() {
    let mut p = vec![0x80, 2];
    p.extend(global("collections", "OrderedDict"));
    p.extend([b')', b'R', 0x8c, 1, b'w']);
    p.extend(global("torch._utils", "_rebuild_tensor_v2"));
    p.extend([b'(', b'(', 0x8c, 7]);
    p.extend(b"storage");
    p.extend(global("torch", "FloatStorage"));
    p.extend([0x8c, 1, b'0', 0x8c, 3]);
    p.extend(b"cpu");
    p.extend([b'K', 6, b't', b'Q', b'K', 0, b'K', 2, b'K', 3, 0x86, b'K', 3, b'K', 1, 0x86, 0x89]);
    p.extend(global("collections", "OrderedDict"));
    p.extend([b')', b'R', b't', b'R', b's', b'.']);
    let (root, arena, used) = load(&p, Storages::Zip).unwrap();
    assert_eq!(used, p.len());
    let t = state_dict_tensors(&root, &arena).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, "w");
    assert_eq!(t[0].1.shape, vec![2, 3]);
    assert_eq!(t[0].1.storage.numel, 6);
}
