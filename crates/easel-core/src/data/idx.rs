//! The IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).

use std::io::Read;
use std::path::Path;

use super::LabelledImages;
use crate::error::{Error, Result};

/// Largest IDX file accepted once decompressed (1 GiB).
const MAX_IDX_BYTES: u64 = 1 << 30;

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.is_empty() {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).take(MAX_IDX_BYTES).read_to_end(&mut out).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: 0,
            reason: format!("not valid gzip ({e})"),
        })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn parse_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Parse { path: path.to_path_buf(), line: 0, reason: reason.into() }
}

/// Dimensions and bytes of an unsigned-byte IDX file.
fn parse_idx(path: &Path, bytes: &[u8], want_dims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(parse_err(path, "not an IDX file (bad magic number)"));
    }
    if bytes[2] != 0x08 {
        return Err(parse_err(path, format!("element type 0x{:02x}, expected unsigned bytes (0x08)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    if ndim != want_dims {
        return Err(parse_err(path, format!("{ndim} dimensions, expected {want_dims}")));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(parse_err(path, "truncated header"));
    }
    let dims: Vec<usize> = (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize).collect();
    let count: usize = dims.iter().product();
    let body = &bytes[header..];
    if body.len() < count {
        return Err(parse_err(path, format!("truncated: {} of {count} bytes", body.len())));
    }
    Ok((dims, body[..count].to_vec()))
}

/// Load an images file and its labels file into one set.
pub fn load_idx_pair(images: &Path, labels: &Path, classes: &[String]) -> Result<LabelledImages> {
    let (dims, pixels) = parse_idx(images, &read_maybe_gz(images)?, 3)?;
    let (ldims, lbytes) = parse_idx(labels, &read_maybe_gz(labels)?, 1)?;
    if dims[0] != ldims[0] {
        return Err(parse_err(labels, format!("{} labels for {} images", ldims[0], dims[0])));
    }
    if let Some((i, &l)) = lbytes.iter().enumerate().find(|(_, l)| **l as usize >= classes.len()) {
        return Err(parse_err(labels, format!("label {l} of image {i} is outside the {} classes", classes.len())));
    }
    let name = images.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(LabelledImages {
        width: dims[2],
        height: dims[1],
        channels: 1,
        pixels,
        labels: lbytes.iter().map(|&l| l as usize).collect(),
        classes: classes.to_vec(),
        sources: (0..dims[0]).map(|i| format!("{name}#{i}")).collect(),
    })
}
