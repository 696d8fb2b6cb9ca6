//! PyTorch `.pth` containers, read with budgets from what the pickle promises: the zip format
//! (PyTorch 1.6 and later: `<name>/data.pkl` and one entry per storage in `<name>/data/`) and
//! the legacy stream (magic number, protocol, system info and state dict pickles, the storage
//! keys, then each storage's element count and bytes). The pickles go through
//! [`super::pickle`], which refuses every callable outside its allow-list.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::rc::Rc;

use super::HostTensor;
use super::pickle::{self, DType, Storages, TensorRef, Value};

/// Largest `data.pkl` read (a ResNet-50's is about 50 KB).
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// Most elements all tensors of one file may hold together (2 GiB of float32).
pub const MAX_ELEMENTS: u64 = 1 << 29;

type Res<T> = std::result::Result<T, String>;

/// The `data.pkl` entry of a PyTorch zip, if `bytes` is a zip that has one.
fn pickle_entry(zip: &zip::ZipArchive<Cursor<&[u8]>>) -> Option<String> {
    let mut names = zip
        .file_names()
        .filter_map(|n| n.ok().map(|c| c.into_owned()))
        .filter(|n| n == "data.pkl" || (n.ends_with("/data.pkl") && n.matches('/').count() == 1));
    let first = names.next()?;
    names.next().is_none().then_some(first)
}

/// Whether `bytes` is a zip holding one `*/data.pkl`: PyTorch's format since 1.6.
pub fn is_pytorch_zip(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(Cursor::new(bytes)).is_ok_and(|z| pickle_entry(&z).is_some())
}

/// One zip entry's bytes, refused unless it holds exactly `expected` bytes (`None`: at most
/// `limit`), whatever its header claims and however it is compressed.
fn read_entry(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, expected: Option<u64>, limit: u64) -> Res<Vec<u8>> {
    let entry = zip.by_name(name).map_err(|e| format!("the zip has no entry {name} ({e})"))?;
    if entry.encrypted() {
        return Err(format!("{name} is encrypted"));
    }
    let declared = entry.size();
    let budget = expected.unwrap_or(limit);
    if declared > budget || expected.is_some_and(|e| e != declared) {
        return Err(format!(
            "{name} holds {declared} bytes, the pickle promises {}",
            expected.map(|e| e.to_string()).unwrap_or_else(|| format!("at most {limit}"))
        ));
    }
    let mut out = Vec::new();
    entry.take(budget + 1).read_to_end(&mut out).map_err(|e| format!("{name} cannot be read ({e})"))?;
    if out.len() as u64 != declared {
        return Err(format!("{name} decompresses to {} bytes, its header says {declared}", out.len()));
    }
    Ok(out)
}

/// Read the tensors of a PyTorch zip.
pub fn read_zip(bytes: &[u8]) -> Res<BTreeMap<String, HostTensor>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a readable zip ({e})"))?;
    let pkl = pickle_entry(&zip).ok_or("the zip holds no single */data.pkl")?;
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    if let Ok(order) = read_entry(&mut zip, &format!("{prefix}byteorder"), None, 16)
        && order.trim_ascii() != b"little"
    {
        return Err("the tensors are stored big-endian".into());
    }
    let data = read_entry(&mut zip, &pkl, None, MAX_PICKLE_BYTES)?;
    let (root, arena, _) = pickle::load(&data, Storages::Zip).map_err(|e| format!("{pkl}: {e}"))?;
    let refs = pickle::state_dict_tensors(&root, &arena)?;
    check_budget(&refs)?;
    let mut storages: HashMap<Rc<str>, Rc<Vec<u8>>> = HashMap::new();
    let mut out = BTreeMap::new();
    for (name, t) in refs {
        let s = &t.storage;
        let bytes = match storages.get(&s.key) {
            Some(b) => b.clone(),
            None => {
                let want = s.numel.checked_mul(s.dtype.size() as u64).ok_or("a storage size overflows")?;
                let b = Rc::new(read_entry(&mut zip, &format!("{prefix}data/{}", s.key), Some(want), want)?);
                storages.insert(s.key.clone(), b.clone());
                b
            }
        };
        out.insert(name.clone(), materialize(&t, &bytes, 0, s.numel).map_err(|e| format!("tensor '{name}': {e}"))?);
    }
    Ok(out)
}

/// The legacy magic number 0x1950a86a20f9469cfc6c as protocol 2 and later write it: the
/// little-endian bytes of a LONG1.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether `bytes` opens with the legacy format's magic-number pickle.
pub fn is_legacy(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(32)];
    bytes.first() == Some(&0x80)
        && head.windows(LEGACY_MAGIC.len()).any(|w| w == LEGACY_MAGIC)
        && matches!(pickle::load(head, Storages::Refused), Ok((Value::BigInt, _, _)))
}

/// Read the tensors of a legacy (PyTorch 0.4 to 1.5) file.
pub fn read_legacy(bytes: &[u8]) -> Res<BTreeMap<String, HostTensor>> {
    let mut pos = 0;
    let mut next = |storages: Storages, what: &str| -> Res<(Value, pickle::Arena)> {
        let (v, arena, used) = pickle::load(&bytes[pos..], storages).map_err(|e| format!("{what}: {e}"))?;
        pos += used;
        Ok((v, arena))
    };
    let (magic, _) = next(Storages::Refused, "the magic number")?;
    if !matches!(magic, Value::BigInt) {
        return Err("a pickle that is not a PyTorch file (no legacy magic number)".into());
    }
    let (proto, _) = next(Storages::Refused, "the protocol version")?;
    if !matches!(proto, Value::Int(1001)) {
        return Err("legacy protocol version is not 1001".into());
    }
    let (info, info_arena) = next(Storages::Refused, "the system info")?;
    if let Value::Dict(d) = info
        && info_arena.dicts[d].iter().any(|(k, v)| matches!((k, v), (Value::Str(k), Value::Bool(false)) if &**k == "little_endian"))
    {
        return Err("the tensors are stored big-endian".into());
    }
    let (root, arena) = next(Storages::Legacy, "the state dict")?;
    let (keys, key_arena) = next(Storages::Refused, "the storage keys")?;
    let Value::List(l) = keys else { return Err("the storage keys are not a list".into()) };
    let keys: Vec<Rc<str>> = key_arena.lists[l]
        .iter()
        .map(|k| if let Value::Str(s) = k { Ok(s.clone()) } else { Err("a storage key is not a string".to_string()) })
        .collect::<Res<_>>()?;
    let refs = pickle::state_dict_tensors(&root, &arena)?;
    check_budget(&refs)?;
    // what each key promises: its element type and count
    let mut promised: HashMap<Rc<str>, (DType, u64)> = HashMap::new();
    for (_, t) in &refs {
        promised.insert(t.storage.key.clone(), (t.storage.dtype, t.storage.numel));
    }
    let mut storages: HashMap<Rc<str>, Vec<u8>> = HashMap::new();
    for key in keys {
        let head = bytes.get(pos..pos + 8).ok_or("truncated: a storage's length is missing")?;
        let numel = u64::from_le_bytes(head.try_into().map_err(|_| "short read")?);
        pos += 8;
        let (dtype, want) = promised.get(&key).copied().unwrap_or((DType::U8, numel));
        if numel != want {
            return Err(format!("storage {key} holds {numel} elements, the pickle promises {want}"));
        }
        let n = numel
            .checked_mul(dtype.size() as u64)
            .filter(|&n| n <= (bytes.len() - pos) as u64)
            .ok_or_else(|| format!("truncated: storage {key} runs past the end of the file"))?;
        if promised.contains_key(&key) {
            storages.insert(key, bytes[pos..pos + n as usize].to_vec());
        }
        pos += n as usize;
    }
    let mut out = BTreeMap::new();
    for (name, t) in refs {
        let s = &t.storage;
        let data = storages.get(&s.key).ok_or_else(|| format!("tensor '{name}': storage {} is not in the file", s.key))?;
        let (base, available) = s.view.unwrap_or((0, s.numel));
        out.insert(name.clone(), materialize(&t, data, base, available).map_err(|e| format!("tensor '{name}': {e}"))?);
    }
    Ok(out)
}

fn check_budget(refs: &[(String, Rc<TensorRef>)]) -> Res<()> {
    let mut total: u64 = 0;
    for (name, t) in refs {
        let n = numel(&t.shape).ok_or_else(|| format!("tensor '{name}': its shape {:?} overflows", t.shape))?;
        total = total.saturating_add(n);
    }
    if total > MAX_ELEMENTS {
        return Err(format!("{total} elements in all, more than the {MAX_ELEMENTS} easel reads"));
    }
    Ok(())
}

fn numel(shape: &[usize]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
}

/// The elements of `t` as float32, from a storage whose bytes are `data`; the tensor's view
/// starts `base` elements in and holds `available` elements.
fn materialize(t: &TensorRef, data: &[u8], base: u64, available: u64) -> Res<HostTensor> {
    let es = t.storage.dtype.size() as u64;
    let count = numel(&t.shape).ok_or("its shape overflows")?;
    if count > 0 {
        let mut last = t.offset;
        for (&d, &s) in t.shape.iter().zip(&t.stride) {
            last = (d as u64 - 1).checked_mul(s as u64).and_then(|x| last.checked_add(x)).ok_or("its strides overflow")?;
        }
        let in_storage = (data.len() as u64) / es;
        if last >= available || base.checked_add(last).is_none_or(|end| end >= in_storage) {
            return Err(format!("it reaches element {last} of a storage of {available}"));
        }
    }
    let element = |i: u64| -> f32 {
        let at = ((base + i) * es) as usize;
        let b = &data[at..at + es as usize];
        match t.storage.dtype {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            DType::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            DType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            DType::I64 => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            DType::I8 => b[0] as i8 as f32,
            DType::U8 | DType::Bool => b[0] as f32,
        }
    };
    let mut out = Vec::with_capacity(count as usize);
    if count > 0 {
        // walk the indices in row-major order
        let mut index = vec![0usize; t.shape.len()];
        let mut at = t.offset;
        for _ in 0..count {
            out.push(element(at));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                at = at.wrapping_add(t.stride[d] as u64);
                if index[d] < t.shape[d] {
                    break;
                }
                at = at.wrapping_sub((t.stride[d] as u64).wrapping_mul(t.shape[d] as u64));
                index[d] = 0;
            }
        }
    }
    Ok(HostTensor { shape: t.shape.clone(), data: out })
}
