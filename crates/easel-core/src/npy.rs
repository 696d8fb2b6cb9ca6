//! Reads and writes float32 `.npy` arrays (C order), the exchange format for maps and tests.

use std::path::Path;

use crate::error::{Error, Result};

/// A float32 array with its shape, as NumPy stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The bytes of a `.npy` file (format 1.0) holding `data` with `shape`.
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Write a float32 `.npy` file atomically.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    crate::fsutil::write_atomic(path, &npy_bytes(shape, data))
}

/// Read a little-endian float32 (or float64, converted) C-order `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = crate::fsutil::read_regular(path, MAX_NPY_BYTES)?;
    parse_npy(&bytes).map_err(|reason| Error::Weights { path: path.to_path_buf(), reason })
}

/// Largest `.npy` file read (1 GiB).
const MAX_NPY_BYTES: u64 = 1 << 30;

/// Parse the bytes of a `.npy` file; every size is checked before it is used.
pub fn parse_npy(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = std::str::from_utf8(bytes.get(start..start.saturating_add(header_len)).ok_or("truncated .npy header")?).map_err(|_| "header is not text")?;
    if header.contains("'fortran_order': True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let descr = header.split("'descr':").nth(1).and_then(|s| s.split('\'').nth(1)).ok_or("no descr in header")?;
    let shape_text = header.split("'shape':").nth(1).and_then(|s| s.split('(').nth(1)).and_then(|s| s.split(')').next()).ok_or("no shape in header")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad dimension '{s}'")))
        .collect::<std::result::Result<_, _>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| format!("shape {shape:?} overflows"))?;
    let body = &bytes[start + header_len..];
    let need = |size: usize| {
        count.checked_mul(size).filter(|&n| n <= body.len()).ok_or_else(|| format!("truncated data: {count} values promised, {} bytes present", body.len()))
    };
    let data: Vec<f32> = match descr {
        "<f4" => {
            need(4)?;
            body.chunks_exact(4).take(count).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        "<f8" => {
            need(8)?;
            body.chunks_exact(8).take(count).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
        }
        other => return Err(format!("unsupported dtype {other}")),
    };
    Ok(NpyArray { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_shape_and_values() {
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes = npy_bytes(&[2, 3, 4], &data);
        assert_eq!((bytes.len() - data.len() * 4) % 64, 0);
        let back = parse_npy(&bytes).unwrap();
        assert_eq!(back.shape, vec![2, 3, 4]);
        assert_eq!(back.data, data);
        let one = parse_npy(&npy_bytes(&[3], &[1.0, 2.0, 3.0])).unwrap();
        assert_eq!(one.shape, vec![3]);
    }
}
