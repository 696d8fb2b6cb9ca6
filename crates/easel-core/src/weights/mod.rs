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

mod pickle;
mod pth;
mod st;

pub use pth::MAX_ELEMENTS;

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
    /// SHA-256 of the bytes the tensors were read from, hex.
    pub sha256: String,
}

/// Largest weights file easel reads (2 GiB): a bigger one is not a classifier we support.
pub const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

/// Read every tensor of a `.safetensors` or PyTorch `.pth`/`.pt` file. The format is told by
/// structure, not by name or first bytes: safetensors is an 8-byte little-endian length and a
/// JSON header of that length; a `.pth` is a zip holding `*/data.pkl` or a legacy pickle
/// stream. A folder, FIFO or device is refused before anything is read.
pub fn read_tensors(path: &Path) -> Result<TensorMap> {
    let bytes = crate::fsutil::read_regular(path, MAX_WEIGHTS_BYTES)?;
    if bytes.is_empty() {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    let sha256 = hex(&sha2::Sha256::digest(&bytes));
    let tensors = match st::detect(&bytes) {
        st::Detected::Safetensors => st::read(&bytes).map_err(|r| weights_err(path, format!("not a valid safetensors file ({r})")))?,
        st::Detected::No if pth::is_pytorch_zip(&bytes) => pth::read_zip(&bytes).map_err(|r| pytorch_err(path, r))?,
        st::Detected::No if pth::is_legacy(&bytes) => pth::read_legacy(&bytes).map_err(|r| pytorch_err(path, r))?,
        st::Detected::No if bytes[0] == 0x80 => {
            // a bare pickle: its globals are checked all the same, but it has no tensor data
            let reason = match pickle::load(&bytes, pickle::Storages::Refused) {
                Err(r) => r,
                Ok(_) => "a bare pickle holds no tensor data (torch.save writes a zip)".into(),
            };
            return Err(pytorch_err(path, reason));
        }
        st::Detected::No if zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).is_ok() => {
            return Err(weights_err(path, "a zip without a */data.pkl entry, so not a PyTorch file"));
        }
        st::Detected::No => {
            return Err(weights_err(
                path,
                "neither safetensors (an 8-byte length and a JSON header) nor PyTorch (a zip with data.pkl, or a legacy pickle stream)",
            ));
        }
    };
    if tensors.is_empty() {
        return Err(weights_err(path, "the file holds no tensors"));
    }
    Ok(TensorMap { path: path.to_path_buf(), tensors, sha256 })
}

fn weights_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Weights { path: path.to_path_buf(), reason: reason.into() }
}

fn pytorch_err(path: &Path, reason: String) -> Error {
    weights_err(path, format!("not a PyTorch state dict easel can read safely: {reason}"))
}

/// The SHA-256 of a file, hex: the model hash reports and caches carry.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = crate::fsutil::read_regular(path, MAX_WEIGHTS_BYTES)?;
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
        if found.data.len() != found.shape.iter().product::<usize>() {
            self.errors.push(weights_err(self.file, format!("tensor '{key}' holds {} values for shape {:?}", found.data.len(), found.shape)));
            return param;
        }
        if let Some(i) = found.data.iter().position(|v| !v.is_finite()) {
            let reason = format!("tensor '{key}' holds {} at element {i}: a model with NaN or infinite weights gives no meaningful output", found.data[i]);
            self.errors.push(weights_err(self.file, reason));
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
    crate::fsutil::write_atomic(path, &safetensors_bytes(tensors)?)
}

/// The bytes of a float32 safetensors file holding `tensors`.
pub fn safetensors_bytes(tensors: &[(String, HostTensor)]) -> Result<Vec<u8>> {
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
    safetensors::serialize(views, None).map_err(|e| Error::Compute(format!("cannot serialise weights: {e}")))
}

struct Namer {
    stack: Vec<(String, String)>,
    namer: TorchNamer,
    out: Vec<(burn::module::ParamId, String)>,
}

impl ModuleVisitor for Namer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push((name.to_string(), container_type.to_string()));
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (key, _) = torch_key(&self.stack, self.namer);
        self.out.push((param.id, key));
    }
}

/// Every float parameter's id and PyTorch name (for training some layers and not others).
pub fn param_names<M: Module>(module: &M, namer: TorchNamer) -> Vec<(burn::module::ParamId, String)> {
    let mut n = Namer { stack: Vec::new(), namer, out: Vec::new() };
    module.visit(&mut n);
    n.out
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
