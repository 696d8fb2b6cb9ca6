//! Writers for the hostile corpus: PyTorch pickles and containers (zip and legacy), zips with
//! lying headers, safetensors with any header, IDX files and small images, all made by code
//! so that no hostile binary is checked in.
#![allow(dead_code)]

use std::io::Write;

/// Protocol-2 pickle opcodes, as `torch.save` writes them.
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn new() -> Pickle {
        Pickle(vec![0x80, 2])
    }
    pub fn op(mut self, bytes: &[u8]) -> Pickle {
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn str(mut self, s: &str) -> Pickle {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn global(mut self, module: &str, name: &str) -> Pickle {
        self.0.extend_from_slice(format!("c{module}\n{name}\n").as_bytes());
        self
    }
    pub fn int(mut self, v: i64) -> Pickle {
        if (0..256).contains(&v) {
            self.0.extend_from_slice(&[b'K', v as u8]);
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            self.0.push(b'J');
            self.0.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.0.extend_from_slice(&[0x8a, 8]);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self
    }
    pub fn ints(mut self, v: &[usize]) -> Pickle {
        self.0.push(b'(');
        for &d in v {
            self = self.int(d as i64);
        }
        self.0.push(b't');
        self
    }
    pub fn stop(mut self) -> Vec<u8> {
        self.0.push(b'.');
        self.0
    }
}

/// One tensor of a state dict as the pickle describes it.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub storage: String,
    pub storage_numel: i64,
    pub offset: i64,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl TensorSpec {
    /// A contiguous tensor filling storage `storage`.
    pub fn contiguous(name: &str, storage: &str, shape: &[usize]) -> TensorSpec {
        let mut stride = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        TensorSpec {
            name: name.into(),
            storage: storage.into(),
            storage_numel: shape.iter().product::<usize>() as i64,
            offset: 0,
            shape: shape.to_vec(),
            stride,
        }
    }
}

/// A state dict pickle (an `OrderedDict` of `_rebuild_tensor_v2` calls), as `torch.save`
/// writes it: zip persistent ids, or legacy ones with `legacy`.
pub fn state_dict_pickle(tensors: &[TensorSpec], legacy: bool) -> Vec<u8> {
    let mut p = Pickle::new().global("collections", "OrderedDict").op(b")R(");
    for t in tensors {
        p = p
            .str(&t.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .str("storage")
            .global("torch", "FloatStorage")
            .str(&t.storage)
            .str("cpu")
            .int(t.storage_numel);
        if legacy {
            p = p.op(b"N");
        }
        p = p.op(b"tQ").int(t.offset).ints(&t.shape).ints(&t.stride).op(&[0x89]).global("collections", "OrderedDict").op(b")Rt").op(b"R");
    }
    p.op(b"u").stop()
}

/// A zip entry: name, bytes, whether deflated, and a lie about its uncompressed size.
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
    pub deflate: bool,
    pub declared_size: Option<u32>,
}

impl Entry {
    pub fn stored(name: &str, data: Vec<u8>) -> Entry {
        Entry { name: name.into(), data, deflate: false, declared_size: None }
    }
}

/// A zip archive, written by hand so its headers can lie.
pub fn zip(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let crc = crc32fast::hash(&e.data);
        let body = if e.deflate {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&e.data).unwrap();
            enc.finish().unwrap()
        } else {
            e.data.clone()
        };
        let size = e.declared_size.unwrap_or(e.data.len() as u32);
        let method: u16 = if e.deflate { 8 } else { 0 };
        let offset = out.len() as u32;
        let mut head = Vec::new();
        head.extend_from_slice(&20u16.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&method.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.extend_from_slice(&0x21u16.to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
        head.extend_from_slice(&(body.len() as u32).to_le_bytes());
        head.extend_from_slice(&size.to_le_bytes());
        head.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0x04034b50u32.to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&body);
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&head);
        central.extend_from_slice(&[0u8; 10]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(e.name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A PyTorch zip (`torch.save` since 1.6) of float32 tensors, entries stored.
pub fn pth_zip(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let specs: Vec<TensorSpec> = tensors.iter().enumerate().map(|(i, (n, s, _))| TensorSpec::contiguous(n, &i.to_string(), s)).collect();
    let mut entries = vec![Entry::stored("archive/data.pkl", state_dict_pickle(&specs, false)), Entry::stored("archive/byteorder", b"little".to_vec())];
    for (i, (_, _, d)) in tensors.iter().enumerate() {
        entries.push(Entry::stored(&format!("archive/data/{i}"), f32_bytes(d)));
    }
    entries.push(Entry::stored("archive/version", b"3\n".to_vec()));
    zip(&entries)
}

/// A legacy PyTorch file (`torch.save(..., _use_new_zipfile_serialization=False)`).
pub fn pth_legacy(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let specs: Vec<TensorSpec> = tensors.iter().enumerate().map(|(i, (n, s, _))| TensorSpec::contiguous(n, &i.to_string(), s)).collect();
    let mut out = Pickle::new().op(&[0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]).stop();
    out.extend(Pickle::new().int(1001).stop());
    out.extend(Pickle::new().op(b"}(").str("protocol_version").int(1001).str("little_endian").op(&[0x88]).op(b"u").stop());
    out.extend(state_dict_pickle(&specs, true));
    let mut keys = Pickle::new().op(b"](");
    for s in &specs {
        keys = keys.str(&s.storage);
    }
    out.extend(keys.op(b"e").stop());
    for (_, _, d) in tensors {
        out.extend_from_slice(&(d.len() as u64).to_le_bytes());
        out.extend(f32_bytes(d));
    }
    out
}

/// A safetensors file with the given JSON header (padded with spaces to `pad_to` bytes when
/// given) and data section.
pub fn safetensors_raw(header: &str, pad_to: Option<usize>, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    if let Some(n) = pad_to {
        while h.len() < n {
            h.push(' ');
        }
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A valid float32 safetensors file whose header is `header_len` bytes long (padded with a
/// metadata entry), so its first byte (and second) can be anything.
pub fn safetensors_with_header_len(tensors: &[(String, Vec<usize>, Vec<f32>)], header_len: usize) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (n, s, d) in tensors {
        let start = data.len();
        data.extend(f32_bytes(d));
        entries.push(format!("\"{n}\":{{\"dtype\":\"F32\",\"shape\":{s:?},\"data_offsets\":[{start},{}]}}", data.len()));
    }
    let body = entries.join(",");
    let base = format!("{{\"__metadata__\":{{\"pad\":\"\"}},{body}}}");
    assert!(base.len() <= header_len, "header of {} bytes wanted, {} needed", header_len, base.len());
    let pad = "x".repeat(header_len - base.len());
    let header = format!("{{\"__metadata__\":{{\"pad\":\"{pad}\"}},{body}}}");
    assert_eq!(header.len(), header_len);
    safetensors_raw(&header, None, &data)
}

/// An unsigned-byte IDX file with these dimensions and body.
pub fn idx(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A PNG of a grey `w` x `h` image (zeros), encoded for real.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::new(w, h);
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A JPEG of a small colour gradient.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 128]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

/// A PNG whose header claims `w` x `h` but holds almost nothing.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    out.extend_from_slice(&(ihdr.len() as u32).to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    out
}

/// A tiny deterministic generator for garbage bytes.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}
