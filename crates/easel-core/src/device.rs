//! Picks the compute device (burn's `flex` CPU backend or wgpu) and says which one it chose.
//!
//! `auto` uses wgpu only where a hardware adapter answers a probe in time; a machine with no
//! Vulkan/GL driver, or only a software rasteriser, gets the CPU. Nothing here panics or hangs:
//! the probe runs on its own thread under a timeout and inside `catch_unwind`.

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::error::{Error, Result};

/// What the user asked for on `--device` (or in the GUI's settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// wgpu where a hardware GPU answers, else the CPU.
    #[default]
    Auto,
    #[value(alias = "flex")]
    Cpu,
    #[value(alias = "gpu")]
    Wgpu,
}

impl DeviceChoice {
    pub const ALL: [DeviceChoice; 3] = [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Wgpu];
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(Error::invalid(format!("unknown device '{other}': expected auto, cpu or wgpu"))),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        })
    }
}

/// What was chosen, in words a user can read and JSON a test can check.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// `cpu` or `wgpu`.
    pub kind: String,
    /// The burn backend: `flex` or `wgpu (<graphics api>)`.
    pub backend: String,
    /// The adapter's name (the CPU for flex).
    pub adapter: String,
    /// Why this device: what `auto` found, or that it was asked for.
    pub reason: String,
}

impl DeviceInfo {
    pub fn summary(&self) -> String {
        format!("{} [{}] on {} ({})", self.kind, self.backend, self.adapter, self.reason)
    }
}

/// A burn device with the description of what it is.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    pub device: Device,
    pub info: DeviceInfo,
}

impl ComputeDevice {
    /// burn's CPU backend.
    pub fn cpu(reason: impl Into<String>) -> Self {
        ComputeDevice { device: Device::flex(), info: DeviceInfo { kind: "cpu".into(), backend: "flex".into(), adapter: cpu_name(), reason: reason.into() } }
    }
}

/// Seconds the wgpu probe may take before `auto` gives up on it.
const WGPU_PROBE_TIMEOUT_SECS: u64 = 60;

/// Choose a device. `Cpu` always succeeds; `Wgpu` fails with a clear error where no adapter
/// answers; `Auto` never fails.
pub fn select_device(choice: DeviceChoice) -> Result<ComputeDevice> {
    match choice {
        DeviceChoice::Cpu => Ok(ComputeDevice::cpu("asked for")),
        DeviceChoice::Wgpu => match probe_wgpu() {
            Ok(found) => Ok(ComputeDevice {
                device: found.device.clone(),
                info: DeviceInfo {
                    reason: if found.software { "asked for; note: a software adapter, slower than the CPU backend".into() } else { "asked for".into() },
                    ..found.info.clone()
                },
            }),
            Err(e) => Err(Error::Device(format!("wgpu is not available: {e}"))),
        },
        DeviceChoice::Auto => {
            if std::env::var_os("EASEL_NO_GPU").is_some() {
                return Ok(ComputeDevice::cpu("auto: EASEL_NO_GPU is set"));
            }
            // Listing adapters is cheap; starting the runtime on a software rasteriser is not
            // (seconds), so `auto` only starts it when a hardware adapter is listed.
            match list_adapters() {
                Ok(list) if !list.iter().any(|a| a.1) => {
                    let names: Vec<&str> = list.iter().map(|a| a.0.as_str()).collect();
                    return Ok(ComputeDevice::cpu(format!("auto: the only wgpu adapters are software ones ({}), the CPU backend is faster", names.join(", "))));
                }
                Ok(_) => {}
                Err(e) => return Ok(ComputeDevice::cpu(format!("auto: no GPU ({e})"))),
            }
            match probe_wgpu() {
                Ok(found) if !found.software => Ok(ComputeDevice {
                    device: found.device.clone(),
                    info: DeviceInfo { reason: "auto: a hardware GPU adapter answered".into(), ..found.info.clone() },
                }),
                Ok(found) => {
                    Ok(ComputeDevice::cpu(format!("auto: the only wgpu adapter is a software one ({}), the CPU backend is faster", found.info.adapter)))
                }
                Err(e) => Ok(ComputeDevice::cpu(format!("auto: no GPU ({e})"))),
            }
        }
    }
}

struct WgpuFound {
    device: Device,
    info: DeviceInfo,
    software: bool,
}

/// The wgpu runtime can be initialised once per process, so the probe's answer is kept.
fn probe_wgpu() -> std::result::Result<&'static WgpuFound, String> {
    static PROBE: OnceLock<std::result::Result<WgpuFound, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new().name("easel-wgpu-probe".into()).spawn(move || {
                let result = std::panic::catch_unwind(probe_wgpu_blocking).unwrap_or_else(|_| Err("the wgpu runtime panicked while starting".into()));
                let _ = tx.send(result);
            });
            if let Err(e) = spawned {
                return Err(format!("cannot start the probe thread: {e}"));
            }
            match rx.recv_timeout(Duration::from_secs(WGPU_PROBE_TIMEOUT_SECS)) {
                Ok(r) => r,
                Err(_) => Err(format!("the wgpu adapter did not answer within {WGPU_PROBE_TIMEOUT_SECS} s")),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The wgpu adapters the system lists: (name, is it a hardware GPU). Runs on its own thread
/// under the probe's timeout.
fn list_adapters() -> std::result::Result<Vec<(String, bool)>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("easel-wgpu-list".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(list_adapters_blocking).unwrap_or_else(|_| Err("the wgpu instance panicked".into()));
            let _ = tx.send(r);
        })
        .map_err(|e| format!("cannot start the probe thread: {e}"))?;
    rx.recv_timeout(Duration::from_secs(WGPU_PROBE_TIMEOUT_SECS)).unwrap_or_else(|_| Err("listing wgpu adapters timed out".into()))
}

fn list_adapters_blocking() -> std::result::Result<Vec<(String, bool)>, String> {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        return Err("no Vulkan, Metal, DX12 or GL adapter was found".into());
    }
    Ok(adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            (info.name.clone(), info.device_type != wgpu::DeviceType::Cpu)
        })
        .collect())
}

fn probe_wgpu_blocking() -> std::result::Result<WgpuFound, String> {
    use burn::tensor::wgpu::wgpu;
    let hardware = list_adapters_blocking()?.iter().any(|a| a.1);
    let (device, setup) = Device::wgpu_options().init_with_setup().map_err(|e| format!("{e}"))?;
    let adapter = setup.adapter.get_info();
    // A tiny computation: some drivers accept a device and fail on the first kernel.
    let a = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]), &device);
    let product = a.clone().matmul(a);
    let values: Vec<f32> = product.try_into_data().map_err(|e| format!("{e:?}"))?.try_into_vec_as::<f32>().map_err(|e| format!("{e:?}"))?;
    if values != [7.0, 10.0, 15.0, 22.0] {
        return Err(format!("the adapter computed a wrong 2x2 product: {values:?}"));
    }
    let software = adapter.device_type == wgpu::DeviceType::Cpu || !hardware;
    Ok(WgpuFound {
        device,
        software,
        info: DeviceInfo {
            kind: "wgpu".into(),
            backend: format!("wgpu ({:?})", setup.backend),
            adapter: format!("{} ({:?})", adapter.name, adapter.device_type),
            reason: String::new(),
        },
    })
}

/// The CPU's model name where the OS says it, else the architecture.
fn cpu_name() -> String {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| m.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model}, {threads} threads")
}
