//! Reads state dicts from `.safetensors` and PyTorch `.pth` files (the pickle is parsed, never
//! run) into host tensors, applies them to burn modules by PyTorch name, and writes them back.
//!
//! Names and layouts are PyTorch's: `Linear` weights are `[out, in]` in the file and `[in, out]`
//! in burn; BatchNorm's `weight`/`bias` are burn's `gamma`/`beta`. Each architecture gives a
//! rename from burn's module path to the PyTorch name; everything else is shared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use sha2::Digest;

use crate::error::{Error, Result};

/// One tensor read from a file, as float32 in row-major order.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All tensors of a weights file by name.
#[derive(Clone, Debug)]
pub struct TensorMap {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Largest weights file easel reads (2 GiB): a bigger one is not a classifier we support.
const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

/// Read every tensor of a `.safetensors` or PyTorch `.pth`/`.pt` file.
pub fn read_tensors(path: &Path) -> Result<TensorMap> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    if meta.len() > MAX_WEIGHTS_BYTES {
        return Err(Error::Weights { path: path.to_path_buf(), reason: format!("{} bytes is larger than the {} byte limit", meta.len(), MAX_WEIGHTS_BYTES) });
    }
    let mut head = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let _ = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    }
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    // A zip (`PK`) or a raw pickle (0x80 protocol byte) is PyTorch; anything else is tried as
    // safetensors, whose first 8 bytes are the header length.
    let is_pytorch = &head[..2] == b"PK" || head[0] == 0x80 || ext == "pth" || ext == "pt" || ext == "bin";
    let tensors = if is_pytorch { read_pytorch(path)? } else { read_safetensors(path)? };
    Ok(TensorMap { path: path.to_path_buf(), tensors })
}

fn weights_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Weights { path: path.to_path_buf(), reason: reason.into() }
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| weights_err(path, format!("not a valid safetensors file ({e})")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = floats_from_bytes(view.data(), safetensors_dtype(view.dtype())).map_err(|r| weights_err(path, format!("tensor '{name}': {r}")))?;
        out.insert(name.to_string(), HostTensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug)]
enum FloatKind {
    F32,
    F64,
    F16,
    BF16,
    Int64,
    Other,
}

fn safetensors_dtype(d: safetensors::Dtype) -> FloatKind {
    use safetensors::Dtype as D;
    match d {
        D::F32 => FloatKind::F32,
        D::F64 => FloatKind::F64,
        D::F16 => FloatKind::F16,
        D::BF16 => FloatKind::BF16,
        D::I64 => FloatKind::Int64,
        _ => FloatKind::Other,
    }
}

fn floats_from_bytes(bytes: &[u8], kind: FloatKind) -> std::result::Result<Vec<f32>, String> {
    Ok(match kind {
        FloatKind::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        FloatKind::F64 => bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
        FloatKind::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        FloatKind::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        // BatchNorm's `num_batches_tracked` counters: kept as numbers, ignored by the loader.
        FloatKind::Int64 => bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
        FloatKind::Other => return Err("unsupported element type".into()),
    })
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    use burn::store::pytorch_reader::{DType, PytorchReader};
    let reader = PytorchReader::new(path).map_err(|e| weights_err(path, format!("not a PyTorch state dict easel can read safely ({e})")))?;
    // The reader never runs pickle code: a call it does not know is kept as its name. A
    // state dict holds tensors, numbers and dictionaries only, so any other call is refused.
    if let Ok(tree) = PytorchReader::read_pickle_data(path, None) {
        let mut calls = Vec::new();
        foreign_calls(&tree, &mut calls);
        if let Some(first) = calls.first() {
            return Err(weights_err(path, format!("the pickle calls {first}, which no state dict does (easel never runs pickle code; nothing was executed)")));
        }
    }
    let mut out = BTreeMap::new();
    for (name, t) in reader.into_tensors() {
        let kind = match t.dtype() {
            DType::F32 => FloatKind::F32,
            DType::F64 => FloatKind::F64,
            DType::F16 => FloatKind::F16,
            DType::BF16 => FloatKind::BF16,
            DType::I64 => FloatKind::Int64,
            _ => FloatKind::Other,
        };
        let bytes = t.read().map_err(|e| weights_err(path, format!("tensor '{name}' cannot be read ({e})")))?;
        // PyTorch writes native-endian; every platform easel targets is little-endian.
        let data = floats_from_bytes(&bytes, kind).map_err(|r| weights_err(path, format!("tensor '{name}': {r}")))?;
        out.insert(name, HostTensor { shape: t.shape().to_vec(), data });
    }
    Ok(out)
}

/// Names of Python callables in a pickle that are not part of PyTorch's tensor format.
fn foreign_calls(v: &burn::store::pytorch_reader::PickleValue, out: &mut Vec<String>) {
    use burn::store::pytorch_reader::PickleValue as P;
    match v {
        P::Unsupported(name) => {
            let benign = name.starts_with("torch") || name.starts_with("collections.OrderedDict") || name.starts_with("numpy");
            if !benign && !out.contains(name) {
                out.push(name.clone());
            }
        }
        P::List(items) => items.iter().for_each(|i| foreign_calls(i, out)),
        P::Dict(map) => map.values().for_each(|i| foreign_calls(i, out)),
        _ => {}
    }
}

/// The SHA-256 of a file, hex: the model hash reports and caches carry.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(hex(&sha2::Sha256::digest(&bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How one architecture names its tensors in PyTorch: from burn's module path (segments,
/// BatchNorm's `gamma`/`beta` already turned into `weight`/`bias`) to the state-dict key.
pub type TorchNamer = fn(&[String]) -> String;

/// Where a parameter sits: its PyTorch name and whether burn stores it transposed.
fn torch_key(stack: &[(String, String)], namer: TorchNamer) -> (String, bool) {
    let mut segments: Vec<String> = stack.iter().map(|(n, _)| n.clone()).collect();
    let parent = stack.last().map(|(_, c)| c.as_str()).unwrap_or("");
    let is_norm = parent == "Struct:BatchNorm";
    let is_linear = parent == "Struct:Linear";
    if let Some(last) = segments.last_mut()
        && is_norm
    {
        match last.as_str() {
            "gamma" => *last = "weight".into(),
            "beta" => *last = "bias".into(),
            _ => {}
        }
    }
    let transposed = is_linear && segments.last().map(String::as_str) == Some("weight");
    (namer(&segments), transposed)
}

/// The PyTorch name of the parameter at burn module path `path` (segments as the visitor
/// reports them), for architecture `arch`. BatchNorm renames are not applied here.
pub fn torch_name_of(arch: &crate::models::Architecture, path: &[String]) -> String {
    (arch.namer())(path)
}

/// Tensors in a state dict that no module holds and no loader needs.
fn is_ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

struct Loader<'a> {
    stack: Vec<(String, String)>,
    tensors: &'a BTreeMap<String, HostTensor>,
    file: &'a Path,
    namer: TorchNamer,
    device: Device,
    used: BTreeSet<String>,
    errors: Vec<Error>,
    missing: Vec<(String, Vec<usize>)>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (key, transposed) = torch_key(&self.stack, self.namer);
        let burn_shape = param.lazy_shape().to_vec();
        let torch_shape: Vec<usize> = if transposed { burn_shape.iter().rev().copied().collect() } else { burn_shape.clone() };
        let Some(found) = self.tensors.get(&key) else {
            self.missing.push((key, torch_shape));
            return param;
        };
        self.used.insert(key.clone());
        if found.shape != torch_shape {
            self.errors.push(Error::TensorShape { path: self.file.to_path_buf(), name: key, expected: torch_shape, found: found.shape.clone() });
            return param;
        }
        let data = if transposed { transpose2(&found.data, found.shape[0], found.shape[1]) } else { found.data.clone() };
        let tensor = Tensor::<D>::from_data(TensorData::new(data, burn_shape), &self.device);
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

fn transpose2(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

fn more_text(n: usize) -> String {
    if n == 0 { String::new() } else { format!(" (and {n} more)") }
}

/// Replace every parameter of `module` with the tensor of the same PyTorch name from `map`.
/// A missing, extra or mis-shaped tensor is an error that names it and both shapes.
pub fn apply_tensors<M: Module>(module: M, map: &TensorMap, namer: TorchNamer, arch: &str, device: &Device) -> Result<M> {
    let mut loader = Loader {
        stack: Vec::new(),
        tensors: &map.tensors,
        file: &map.path,
        namer,
        device: device.clone(),
        used: BTreeSet::new(),
        errors: Vec::new(),
        missing: Vec::new(),
    };
    let module = module.map(&mut loader);
    if !loader.errors.is_empty() {
        return Err(loader.errors.remove(0));
    }
    if let Some((name, expected)) = loader.missing.first() {
        return Err(Error::MissingTensor { path: map.path.clone(), name: name.clone(), expected: expected.clone(), more: more_text(loader.missing.len() - 1) });
    }
    let unused: Vec<(&String, &HostTensor)> = map.tensors.iter().filter(|(k, _)| !loader.used.contains(*k) && !is_ignorable(k)).collect();
    if let Some((name, t)) = unused.first() {
        return Err(Error::UnexpectedTensor {
            path: map.path.clone(),
            name: (*name).clone(),
            found: t.shape.clone(),
            arch: arch.to_string(),
            more: more_text(unused.len() - 1),
        });
    }
    Ok(module)
}

struct Collector {
    stack: Vec<(String, String)>,
    namer: TorchNamer,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
    error: Option<String>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (key, transposed) = torch_key(&self.stack, self.namer);
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let data: Vec<f32> = match tensor.try_into_data().map(|d| d.try_into_vec_as::<f32>()) {
            Ok(Ok(v)) => v,
            other => {
                self.error = Some(format!("cannot read back '{key}': {other:?}"));
                return;
            }
        };
        if transposed {
            let (rows, cols) = (shape[0], shape[1]);
            self.out.push((key, vec![cols, rows], transpose2(&data, rows, cols)));
        } else {
            self.out.push((key, shape, data));
        }
    }
}

/// The module's parameters by PyTorch name and in PyTorch layout.
pub fn collect_tensors<M: Module>(module: &M, namer: TorchNamer) -> Result<Vec<(String, HostTensor)>> {
    let mut c = Collector { stack: Vec::new(), namer, out: Vec::new(), error: None };
    module.visit(&mut c);
    if let Some(e) = c.error {
        return Err(Error::Compute(e));
    }
    Ok(c.out.into_iter().map(|(k, shape, data)| (k, HostTensor { shape, data })).collect())
}

/// Write tensors as a float32 safetensors file (atomically), readable by PyTorch and easel.
pub fn write_safetensors(path: &Path, tensors: &[(String, HostTensor)]) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> =
        tensors.iter().map(|(k, t)| (k.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect(), t.shape.clone())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::Compute(format!("tensor '{k}': {e}")))
        })
        .collect::<Result<_>>()?;
    let serialized = safetensors::serialize(views, None).map_err(|e| Error::Compute(format!("cannot serialise weights: {e}")))?;
    crate::fsutil::write_atomic(path, &serialized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let t = transpose2(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(t, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
