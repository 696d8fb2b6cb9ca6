//! The IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).

use std::io::Read;
use std::path::Path;

use super::LabelledImages;
use crate::error::{Error, Result};

/// Largest IDX file accepted once decompressed (1 GiB).
const MAX_IDX_BYTES: u64 = 1 << 30;

/// The bytes of an IDX file, decompressed if it is gzip. A gzip file is decompressed no further
/// than its IDX header promises (a small file cannot make easel inflate gigabytes), and data
/// after the gzip stream is an error.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = crate::fsutil::read_regular(path, MAX_IDX_BYTES)?;
    if raw.is_empty() {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let gz_err = |e: std::io::Error| parse_err(path, format!("not valid gzip ({e})"));
    let mut dec = flate2::bufread::GzDecoder::new(&raw[..]);
    let mut out = vec![0u8; 4];
    dec.read_exact(&mut out).map_err(gz_err)?;
    let ndim = out[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(parse_err(path, format!("{ndim} dimensions in the IDX header")));
    }
    out.resize(4 + 4 * ndim, 0);
    dec.read_exact(&mut out[4..]).map_err(gz_err)?;
    let promised = idx_dims(&out[4..], ndim)
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .and_then(|body| body.checked_add(out.len() as u64))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| parse_err(path, format!("the header promises more than the {MAX_IDX_BYTES} bytes easel reads")))?;
    (&mut dec).take(promised - out.len() as u64 + 1).read_to_end(&mut out).map_err(gz_err)?;
    if out.len() as u64 > promised {
        return Err(parse_err(path, format!("decompresses to more than the {promised} bytes its header promises")));
    }
    if out.len() as u64 == promised {
        // the stream must end (and its checksum hold) right here
        let mut probe = [0u8; 1];
        if dec.read(&mut probe).map_err(gz_err)? != 0 {
            return Err(parse_err(path, format!("decompresses to more than the {promised} bytes its header promises")));
        }
        if !dec.into_inner().is_empty() {
            return Err(parse_err(path, "data after the end of the gzip stream"));
        }
    }
    Ok(out)
}

fn idx_dims(bytes: &[u8], ndim: usize) -> Vec<usize> {
    (0..ndim).map(|i| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]) as usize).collect()
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
    let dims = idx_dims(&bytes[4..], ndim);
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| parse_err(path, format!("dimensions {dims:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() < count {
        return Err(parse_err(path, format!("truncated: {} of {count} bytes", body.len())));
    }
    if body.len() > count {
        return Err(parse_err(path, format!("{} bytes after the {count} its header promises", body.len() - count)));
    }
    if dims.contains(&0) {
        return Err(parse_err(path, format!("dimensions {dims:?}: the file holds no images or labels")));
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
