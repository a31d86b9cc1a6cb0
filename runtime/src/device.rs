//! The wgpu device every program runs on, and a plain report of the adapter
//! behind it: a number measured on a software adapter (lavapipe, SwiftShader)
//! must never pass for a GPU number.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found{0}; on a machine without a GPU install Mesa's lavapipe \
         (Debian package mesa-vulkan-drivers)"
    )]
    NoAdapter(String),
    #[error("the adapter {adapter} refused a device: {message}")]
    Device { adapter: String, message: String },
    #[error("kernel {kernel}: {message}")]
    Kernel { kernel: String, message: String },
    #[error("reading results back from the GPU failed: {0}")]
    Readback(String),
    #[error("input {name}: {message}")]
    Input { name: String, message: String },
    #[error("the program does not fit this adapter or breaks the runtime's rules: {0}")]
    Program(#[from] crate::check::ProgramError),
    #[error("the adapter refused {what}: {message}")]
    Refused { what: String, message: String },
}

#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub driver: String,
    pub software: bool,
    pub max_storage_binding_bytes: u64,
    /// The fewest lanes of a subgroup, 0 where the device was made without
    /// subgroup operations (the adapter lacks them, or the browser).
    pub subgroup_min_size: u32,
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let name = if self.name.is_empty() {
            "an unnamed adapter"
        } else {
            &self.name
        };
        write!(f, "{name} ({}", self.backend)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")?;
        if self.software {
            write!(f, " — a software adapter on the CPU, not a GPU")?;
        }
        Ok(())
    }
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterReport,
}

impl Gpu {
    /// The highest-performance adapter there is, with every limit it offers.
    pub async fn new() -> Result<Self, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter = instance
            .request_adapter(&options)
            .await
            .map_err(|e| GpuError::NoAdapter(format!(" ({e})")))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        // Timestamps, where the adapter has them, for `xltc profile`, and
        // subgroups, for the kernels `compile --tune` may choose.
        #[cfg(not(target_arch = "wasm32"))]
        let required_features =
            adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP);
        #[cfg(target_arch = "wasm32")]
        let required_features = wgpu::Features::empty();
        let report = AdapterReport {
            software: info.device_type == wgpu::DeviceType::Cpu
                || ["llvmpipe", "lavapipe", "swiftshader"]
                    .iter()
                    .any(|s| info.name.to_lowercase().contains(s)),
            name: info.name,
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_owned(),
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
            subgroup_min_size: if required_features.contains(wgpu::Features::SUBGROUP) {
                info.subgroup_min_size
            } else {
                0
            },
        };
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("xltc"),
            required_limits: limits,
            required_features,
            ..Default::default()
        };
        let (device, queue) =
            adapter
                .request_device(&descriptor)
                .await
                .map_err(|e| GpuError::Device {
                    adapter: report.name.clone(),
                    message: e.to_string(),
                })?;
        Ok(Self {
            device,
            queue,
            adapter: report,
        })
    }

    /// [`Gpu::new`], blocking (native only; the browser awaits it).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self, GpuError> {
        pollster::block_on(Self::new())
    }
}
