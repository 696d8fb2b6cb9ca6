//! A pickle reader for PyTorch state dicts that never runs anything. It interprets the opcodes
//! a state dict is made of; every global is checked against an exact allow-list (the tensor
//! callables, storage types and helpers PyTorch's `weights_only` unpickler allows for state
//! dicts, by full dotted name) the moment it is read, so a foreign one is refused wherever it
//! appears, even if its result would be popped unused; REDUCE, NEWOBJ, BUILD, INST and OBJ on
//! anything but those callables are refused too. Memory grows with the pickle's length only:
//! every value is copied in O(1) (containers live in an arena, strings are shared).

use std::collections::HashMap;
use std::rc::Rc;

mod types;

pub use types::*;

/// What persistent ids (tensor storages) look like in this container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storages {
    /// None allowed (a header pickle).
    Refused,
    /// `('storage', type, key, location, numel)`, the zip format.
    Zip,
    /// `('storage', type, key, location, numel, view)`, the legacy format.
    Legacy,
}

/// Most dimensions a tensor may have.
const MAX_DIMS: usize = 16;

type Res<T> = std::result::Result<T, String>;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    metastack: Vec<Vec<Value>>,
    memo: HashMap<u64, Value>,
    arena: Arena,
    storages: Storages,
}

/// Interpret one pickle at the start of `data`. Returns its value, the containers it refers
/// to, and the number of bytes it took (to the STOP opcode).
pub fn load(data: &[u8], storages: Storages) -> Res<(Value, Arena, usize)> {
    let mut m = Machine { data, pos: 0, stack: Vec::new(), metastack: Vec::new(), memo: HashMap::new(), arena: Arena::default(), storages };
    let value = m.run()?;
    Ok((value, m.arena, m.pos))
}

fn refused(module: &str, name: &str) -> String {
    format!("the pickle names {module}.{name}, which no state dict does (easel never runs pickle code; nothing was executed)")
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: u64) -> Res<&[u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(format!("truncated pickle: {n} bytes wanted at byte {}, {left} left", self.pos));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short read")?))
    }
    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short read")?))
    }
    fn line(&mut self) -> Res<&'a str> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("truncated pickle: a text line has no end")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "a text line of the pickle is not UTF-8".into())
    }
    fn pop(&mut self) -> Res<Value> {
        self.stack.pop().ok_or_else(|| format!("malformed pickle: stack underflow at byte {}", self.pos))
    }
    fn top(&mut self) -> Res<&mut Value> {
        let pos = self.pos;
        self.stack.last_mut().ok_or_else(|| format!("malformed pickle: stack underflow at byte {pos}"))
    }
    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let outer = self.metastack.pop().ok_or_else(|| format!("malformed pickle: no MARK before byte {}", self.pos))?;
        Ok(std::mem::replace(&mut self.stack, outer))
    }
    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }
    fn string(bytes: &[u8]) -> Value {
        Value::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref()))
    }
    fn global(&mut self, module: &str, name: &str) -> Res<Value> {
        allowed(module, name).map(Value::Global).ok_or_else(|| refused(module, name))
    }
    fn new_dict(&mut self) -> Value {
        self.arena.dicts.push(Vec::new());
        Value::Dict(self.arena.dicts.len() - 1)
    }
    fn new_list(&mut self, items: Vec<Value>) -> Value {
        self.arena.lists.push(items);
        Value::List(self.arena.lists.len() - 1)
    }
    fn set_items(&mut self, items: Vec<Value>) -> Res<()> {
        if !items.len().is_multiple_of(2) {
            return Err("malformed pickle: SETITEMS with an odd number of items".into());
        }
        let Value::Dict(d) = *self.top()? else {
            let what = self.top()?.describe();
            return Err(format!("SETITEM on {what}: only dicts take items in a state dict"));
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            self.arena.dicts[d].push((k, v));
        }
        Ok(())
    }
    fn append(&mut self, items: Vec<Value>) -> Res<()> {
        let Value::List(l) = *self.top()? else {
            let what = self.top()?.describe();
            return Err(format!("APPEND on {what}: only lists take items in a state dict"));
        };
        self.arena.lists[l].extend(items);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> Res<()> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| format!("malformed pickle: memo entry {key} is not set"))?;
        self.push(v);
        Ok(())
    }
    fn memo_put(&mut self, key: u64) -> Res<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }
    fn long(bytes: &[u8]) -> Value {
        if bytes.len() > 8 {
            let sign = if bytes.last().is_some_and(|b| b & 0x80 != 0) { 0xff } else { 0 };
            if bytes[8..].iter().any(|&b| b != sign) {
                return Value::BigInt;
            }
        }
        let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
        let n = bytes.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
        Value::Int(i64::from_le_bytes(buf))
    }

    fn run(&mut self) -> Res<Value> {
        loop {
            let at = self.pos;
            let op = self.u8().map_err(|_| "truncated pickle: no STOP opcode".to_string())?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(format!("pickle protocol {p} is not one Python writes"));
                    }
                }
                0x95 => {
                    let n = self.u64()?;
                    if n > (self.data.len() - self.pos) as u64 {
                        return Err("truncated pickle: a frame runs past the end".into());
                    }
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => {
                    let s = std::mem::take(&mut self.stack);
                    self.metastack.push(s);
                }
                b'0' => {
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let b = self.take(2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]);
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as u64 } else { self.u32()? as u64 };
                    let v = Self::long(self.take(n)?);
                    self.push(v);
                }
                b'I' | b'L' => {
                    let line = self.line()?.trim_end_matches('L').to_string();
                    let v = match line.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        t => t.parse::<i64>().map(Value::Int).unwrap_or(Value::BigInt),
                    };
                    self.push(v);
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Value::Float);
                }
                b'F' => {
                    self.line()?.trim().parse::<f64>().map_err(|_| "malformed pickle: a FLOAT is not a number")?;
                    self.push(Value::Float);
                }
                b'X' | 0x8c | 0x8d | b'T' | b'U' => {
                    let n = match op {
                        b'X' | b'T' => self.u32()? as u64,
                        0x8d => self.u64()?,
                        _ => self.u8()? as u64,
                    };
                    let v = Self::string(self.take(n)?);
                    self.push(v);
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as u64,
                        b'C' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    self.take(n)?;
                    self.push(Value::Bytes);
                }
                b'S' | b'V' => {
                    let line = self.line()?;
                    let text = if op == b'S' { line.trim().trim_matches(|c| c == '\'' || c == '"') } else { line };
                    let v = Value::Str(Rc::from(text));
                    self.push(v);
                }
                b')' => self.push(Value::Tuple(Rc::from(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::from(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(format!("malformed pickle: stack underflow at byte {at}"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::Tuple(Rc::from(items)));
                }
                b']' | 0x8f => {
                    let v = self.new_list(Vec::new());
                    self.push(v);
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.new_list(items);
                    self.push(v);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'}' => {
                    let v = self.new_dict();
                    self.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.new_dict();
                    self.push(v);
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let k = self.line()?.trim().parse::<u64>().map_err(|_| "malformed pickle: PUT needs a number")?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.u32()? as u64;
                    self.memo_get(k)?;
                }
                b'g' => {
                    let k = self.line()?.trim().parse::<u64>().map_err(|_| "malformed pickle: GET needs a number")?;
                    self.memo_get(k)?;
                }
                b'c' | b'i' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    let g = self.global(&module, &name)?;
                    if op == b'c' {
                        self.push(g);
                    } else {
                        let args = self.pop_mark()?;
                        let v = self.instantiate(&g, &args, "INST")?;
                        self.push(v);
                    }
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err("malformed pickle: STACK_GLOBAL needs two strings".into());
                    };
                    let g = self.global(&module, &name)?;
                    self.push(g);
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err("malformed pickle: OBJ without a class".into());
                    }
                    let cls = items.remove(0);
                    let v = self.instantiate(&cls, &items, "OBJ")?;
                    self.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let args = tuple_items(&args, "NEWOBJ")?;
                    let v = self.instantiate(&cls, &args, "NEWOBJ")?;
                    self.push(v);
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let empty_kwargs = matches!(kwargs, Value::Dict(d) if self.arena.dicts[d].is_empty());
                    if !empty_kwargs {
                        return Err(format!("NEWOBJ_EX with keyword arguments on {}", cls.describe()));
                    }
                    let args = tuple_items(&args, "NEWOBJ_EX")?;
                    let v = self.instantiate(&cls, &args, "NEWOBJ_EX")?;
                    self.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let args = tuple_items(&args, "REDUCE")?;
                    let v = self.call(&f, &args)?;
                    self.push(v);
                }
                b'b' => {
                    let _state = self.pop()?;
                    match self.top()? {
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => return Err(format!("BUILD on {}: only dicts and tensors take state in a state dict", other.describe())),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(&pid)?;
                    self.push(v);
                }
                b'P' => return Err("text persistent ids are not part of a PyTorch state dict".into()),
                0x82..=0x84 => return Err("the pickle uses the extension registry (EXT opcodes), which no state dict does".into()),
                0x97 | 0x98 => return Err("the pickle uses out-of-band buffers, which no state dict does".into()),
                other => return Err(format!("unknown pickle opcode 0x{other:02x} at byte {at}")),
            }
        }
    }

    /// NEWOBJ / INST / OBJ: only an empty `OrderedDict`.
    fn instantiate(&mut self, cls: &Value, args: &[Value], op: &str) -> Res<Value> {
        match cls {
            Value::Global(Global::OrderedDict) if args.is_empty() => Ok(self.new_dict()),
            other => Err(format!("{op} on {}: not part of a state dict", other.describe())),
        }
    }

    /// REDUCE: the tensor rebuild functions, `torch.Size` and an empty `OrderedDict`.
    fn call(&mut self, f: &Value, args: &[Value]) -> Res<Value> {
        let Value::Global(g) = f else { return Err(format!("REDUCE on {}: not part of a state dict", f.describe())) };
        match (g, args) {
            (Global::OrderedDict, []) => Ok(self.new_dict()),
            (Global::Size, [Value::Tuple(dims)]) => {
                dims_of(dims, "torch.Size")?;
                Ok(Value::Tuple(dims.clone()))
            }
            (Global::RebuildTensorV2, [s, o, size, stride, _, _])
            | (Global::RebuildTensorV2, [s, o, size, stride, _, _, _])
            | (Global::RebuildTensor, [s, o, size, stride]) => tensor(s, o, size, stride),
            (Global::RebuildParameter, [t @ Value::Tensor(_), _, _]) | (Global::RebuildParameterWithState, [t @ Value::Tensor(_), _, _, _]) => Ok(t.clone()),
            _ => Err(format!("REDUCE on {} with arguments a state dict does not use", g.name())),
        }
    }

    fn persistent(&mut self, pid: &Value) -> Res<Value> {
        let items = match pid {
            Value::Tuple(items) => items.clone(),
            other => return Err(format!("a persistent id is {}, not a storage tuple", other.describe())),
        };
        let storage = match (self.storages, &items[..]) {
            (Storages::Zip, [Value::Str(tag), Value::Global(Global::Storage(d)), Value::Str(key), Value::Str(_), numel]) if &**tag == "storage" => {
                StorageRef { key: key_of(key)?, dtype: *d, numel: count(numel, "storage size")?, view: None }
            }
            (Storages::Legacy, [Value::Str(tag), Value::Global(Global::Storage(d)), Value::Str(key), Value::Str(_), numel, view]) if &**tag == "storage" => {
                let view = match view {
                    Value::None => None,
                    Value::Tuple(v) => match &v[..] {
                        [Value::Str(_), off, n] => Some((count(off, "view offset")?, count(n, "view size")?)),
                        _ => return Err("a legacy storage view is not (key, offset, size)".into()),
                    },
                    _ => return Err("a legacy storage view is not (key, offset, size)".into()),
                };
                StorageRef { key: key_of(key)?, dtype: *d, numel: count(numel, "storage size")?, view }
            }
            (Storages::Refused, _) => return Err("a header pickle refers to tensor storage".into()),
            _ => return Err("a persistent id is not a PyTorch storage reference".into()),
        };
        if let Some((off, n)) = storage.view
            && off.checked_add(n).is_none_or(|end| end > storage.numel)
        {
            return Err(format!("a storage view ({n} elements at {off}) runs past its storage of {}", storage.numel));
        }
        Ok(Value::Storage(Rc::new(storage)))
    }
}

fn tuple_items(args: &Value, op: &str) -> Res<Vec<Value>> {
    match args {
        Value::Tuple(items) => Ok(items.to_vec()),
        other => Err(format!("{op} arguments are {}, not a tuple", other.describe())),
    }
}

/// A storage key names a container entry: digits and letters only.
fn key_of(key: &Rc<str>) -> Res<Rc<str>> {
    if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("storage key '{}' is not a plain name", key.chars().take(64).collect::<String>()));
    }
    Ok(key.clone())
}

fn count(v: &Value, what: &str) -> Res<u64> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        _ => Err(format!("{what} is not a non-negative integer")),
    }
}

fn dims_of(items: &[Value], what: &str) -> Res<Vec<usize>> {
    if items.len() > MAX_DIMS {
        return Err(format!("{what} has {} dimensions, more than {MAX_DIMS}", items.len()));
    }
    items.iter().map(|v| count(v, what).and_then(|n| usize::try_from(n).map_err(|_| format!("{what} is too large")))).collect()
}

fn tensor(storage: &Value, offset: &Value, size: &Value, stride: &Value) -> Res<Value> {
    let Value::Storage(storage) = storage else { return Err(format!("a tensor is rebuilt from {}, not a storage", storage.describe())) };
    let (Value::Tuple(size), Value::Tuple(stride)) = (size, stride) else { return Err("a tensor's size and stride are not tuples".into()) };
    let shape = dims_of(size, "a tensor's size")?;
    let stride = dims_of(stride, "a tensor's stride")?;
    if shape.len() != stride.len() {
        return Err(format!("a tensor has {} sizes but {} strides", shape.len(), stride.len()));
    }
    let offset = count(offset, "a tensor's storage offset")?;
    Ok(Value::Tensor(Rc::new(TensorRef { storage: storage.clone(), offset, shape, stride })))
}

#[cfg(test)]
mod tests;
