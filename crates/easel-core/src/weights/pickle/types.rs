//! What a state-dict pickle may hold: the allow-list of globals (by full dotted name), the
//! values the reader builds, and the walk that finds the tensors in them.

use std::rc::Rc;

type Res<T> = std::result::Result<T, String>;

/// Element types of PyTorch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
}

const DTYPES: [(&str, &str, DType); 10] = [
    ("FloatStorage", "float32", DType::F32),
    ("DoubleStorage", "float64", DType::F64),
    ("HalfStorage", "float16", DType::F16),
    ("BFloat16Storage", "bfloat16", DType::BF16),
    ("LongStorage", "int64", DType::I64),
    ("IntStorage", "int32", DType::I32),
    ("ShortStorage", "int16", DType::I16),
    ("CharStorage", "int8", DType::I8),
    ("ByteStorage", "uint8", DType::U8),
    ("BoolStorage", "bool", DType::Bool),
];

/// The callables and classes a state dict may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    Size,
    Storage(DType),
    Dtype(DType),
}

/// The allow-list, by full dotted name.
pub fn allowed(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch", "Size") => Global::Size,
        ("torch", n) => {
            let (_, _, d) = DTYPES.iter().find(|(s, t, _)| *s == n || *t == n)?;
            if DTYPES.iter().any(|(s, _, _)| *s == n) { Global::Storage(*d) } else { Global::Dtype(*d) }
        }
        _ => return None,
    })
}

impl Global {
    pub fn name(self) -> String {
        match self {
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildTensor => "torch._utils._rebuild_tensor".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state".into(),
            Global::Size => "torch.Size".into(),
            Global::Storage(d) => format!("torch.{}", DTYPES.iter().find(|x| x.2 == d).map(|x| x.0).unwrap_or("?")),
            Global::Dtype(d) => format!("torch.{}", DTYPES.iter().find(|x| x.2 == d).map(|x| x.1).unwrap_or("?")),
        }
    }
}

/// A storage a tensor points into: `key` names its bytes in the container.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: Rc<str>,
    pub dtype: DType,
    /// Elements in the whole storage, as the pickle promises.
    pub numel: u64,
    /// Legacy files: a view of `numel` elements starting `offset` elements into the storage.
    pub view: Option<(u64, u64)>,
}

/// A tensor as the pickle describes it: where its elements are, not yet read.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: Rc<StorageRef>,
    /// In elements, from the start of the storage (or of its view).
    pub offset: u64,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits.
    BigInt,
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<[Value]>),
    /// Index into [`Arena::lists`] (lists and sets).
    List(usize),
    /// Index into [`Arena::dicts`].
    Dict(usize),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    pub fn describe(&self) -> String {
        match self {
            Value::Global(g) => g.name(),
            Value::Tensor(_) => "a tensor".into(),
            Value::Storage(_) => "a storage".into(),
            Value::Dict(_) => "a dict".into(),
            Value::List(_) => "a list".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::Str(_) | Value::Bytes => "a string".into(),
            _ => "a number".into(),
        }
    }
}

/// Mutable containers, referred to by index so that copies are cheap and cycles harmless.
#[derive(Debug, Default)]
pub struct Arena {
    pub lists: Vec<Vec<Value>>,
    pub dicts: Vec<Vec<(Value, Value)>>,
}

/// Deepest nesting of dicts walked when collecting tensors.
const MAX_DEPTH: usize = 32;

/// The tensors of a state dict by name: the root dict's tensors, and those of dicts inside it
/// with dotted names (`{'model': {'fc.weight': ..}}` gives `model.fc.weight`). Other values
/// (numbers, strings, lists) are left out.
pub fn state_dict_tensors(root: &Value, arena: &Arena) -> Res<Vec<(String, Rc<TensorRef>)>> {
    let Value::Dict(_) = root else { return Err(format!("the pickle holds {}, not a state dict (a dict of tensors)", root.describe())) };
    let mut out = Vec::new();
    let mut budget = 10_000_000usize;
    walk(root, arena, "", 0, &mut budget, &mut out)?;
    Ok(out)
}

fn walk(v: &Value, arena: &Arena, prefix: &str, depth: usize, budget: &mut usize, out: &mut Vec<(String, Rc<TensorRef>)>) -> Res<()> {
    let Value::Dict(d) = v else { return Ok(()) };
    if depth > MAX_DEPTH {
        return Err(format!("dicts nested more than {MAX_DEPTH} deep"));
    }
    for (k, v) in &arena.dicts[*d] {
        *budget = budget.checked_sub(1).ok_or("the state dict has too many entries")?;
        let key = match k {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => continue,
        };
        let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        match v {
            Value::Tensor(t) => out.push((name, t.clone())),
            Value::Dict(_) => walk(v, arena, &name, depth + 1, budget, out)?,
            _ => {}
        }
    }
    Ok(())
}
