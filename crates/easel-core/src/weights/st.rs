//! safetensors files, recognised by structure (an 8-byte little-endian header length, then a
//! JSON object of that length) and read with the `safetensors` crate, which checks that every
//! tensor's offsets fit the file and match its shape.

use std::collections::BTreeMap;

use super::HostTensor;
use super::pth::MAX_ELEMENTS;

/// The largest JSON header the safetensors format accepts.
const MAX_HEADER_BYTES: u64 = 100_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Detected {
    /// An 8-byte length and a JSON object of that length: a safetensors file (valid or not).
    Safetensors,
    No,
}

/// Whether `bytes` is laid out as a safetensors file. Any first byte is possible (the length's
/// low byte can be 0x80, a pickle's first byte, or the length can start with `PK`), so only the
/// header that follows decides.
pub fn detect(bytes: &[u8]) -> Detected {
    let Some(len) = bytes.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)) else { return Detected::No };
    if !(2..=MAX_HEADER_BYTES).contains(&len) || len > (bytes.len() - 8) as u64 {
        return Detected::No;
    }
    match serde_json::from_slice::<serde_json::Value>(&bytes[8..8 + len as usize]) {
        Ok(serde_json::Value::Object(_)) => Detected::Safetensors,
        _ => Detected::No,
    }
}

/// Every tensor of a safetensors file, as float32.
pub fn read(bytes: &[u8]) -> Result<BTreeMap<String, HostTensor>, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let mut total: u64 = 0;
    for (name, view) in st.iter() {
        let n = view.shape().iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or_else(|| format!("tensor '{name}': its shape overflows"))?;
        total = total.saturating_add(n);
    }
    if total > MAX_ELEMENTS {
        return Err(format!("{total} elements in all, more than the {MAX_ELEMENTS} easel reads"));
    }
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = floats_from_bytes(view.data(), view.dtype()).map_err(|r| format!("tensor '{name}': {r}"))?;
        out.insert(name.to_string(), HostTensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

fn floats_from_bytes(b: &[u8], dtype: safetensors::Dtype) -> Result<Vec<f32>, String> {
    use safetensors::Dtype as D;
    Ok(match dtype {
        D::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        D::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect(),
        D::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        D::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        // BatchNorm's `num_batches_tracked` counters and other integer buffers: kept as
        // numbers, ignored by the loader.
        D::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect(),
        D::I32 => b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        D::I16 => b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32).collect(),
        D::I8 => b.iter().map(|&v| v as i8 as f32).collect(),
        D::U8 | D::BOOL => b.iter().map(|&v| v as f32).collect(),
        other => return Err(format!("element type {other:?} is not supported")),
    })
}
