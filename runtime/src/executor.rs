//! Runs a [`Program`] on a [`Gpu`]: buffers, pipelines and bind groups are made
//! once at load; each run writes the inputs, records every dispatch in one
//! command encoder and one compute pass, copies the outputs to one staging
//! buffer, submits once, and reads back asynchronously.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::check::ProgramLimits;
use crate::device::{Gpu, GpuError};
use crate::inputs::{id_order, input_bytes, ModelInputs, TrainingInputs, ORDER_SUFFIX};
use crate::program::{BufferRole, BufferSpec, Dispatch, Program, WeightSlice};

/// The largest staging buffer [`Executor::read_buffers`] makes.
pub const READ_BACK_BYTES: u64 = 256 << 20;

/// An output read back from the GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct Executor {
    program: Program,
    buffers: Vec<wgpu::Buffer>,
    pipelines: Vec<wgpu::ComputePipeline>,
    bind_groups: Vec<wgpu::BindGroup>,
    staging: wgpu::Buffer,
    /// Offset of each output in the staging buffer.
    staging_offsets: Vec<u64>,
}

/// The buffers the executors of one model's programs share, by role: every
/// bucket binds the same weights, uploaded once; a train step adds into the
/// gradients the optimizer step reads, which updates the weights and the
/// moments in place.
#[derive(Default)]
pub struct WeightBuffers(RefCell<HashMap<BufferRole, wgpu::Buffer>>);

impl BufferRole {
    /// Whether the buffer outlives a run and is shared between programs.
    fn shared(&self) -> bool {
        matches!(
            self,
            BufferRole::Weight(_) | BufferRole::Gradient(_) | BufferRole::Moment { .. }
        )
    }
}

impl Executor {
    /// Creates every GPU object the program needs; `weight(name)` gives the
    /// f32 data of a weight buffer.
    pub async fn load<'w>(
        gpu: &Gpu,
        program: Program,
        weight: impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<Self, GpuError> {
        Self::load_sharing(gpu, program, &WeightBuffers::default(), weight).await
    }

    /// As [`Executor::load`], taking weight buffers from `shared` where an
    /// earlier program made them, and leaving its own there.
    pub async fn load_sharing<'w>(
        gpu: &Gpu,
        program: Program,
        shared: &WeightBuffers,
        weight: impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<Self, GpuError> {
        let device = &gpu.device;
        program.check(&ProgramLimits::of(
            &device.limits(),
            gpu.adapter.subgroup_min_size,
        ))?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffers = create_buffers(gpu, &program, shared, weight)?;
        refused(scope.pop().await, "the program's buffers")?;
        let mut pipelines = Vec::with_capacity(program.kernels.len());
        for (index, kernel) in program.kernels.iter().enumerate() {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            pipelines.push(create_pipeline(device, &program, index));
            if let Some(error) = scope.pop().await {
                return Err(GpuError::Kernel {
                    kernel: kernel.name.clone(),
                    message: error.to_string(),
                });
            }
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind_groups = program
            .dispatches
            .iter()
            .map(|d| create_bind_group(device, &pipelines[d.kernel], d, &buffers))
            .collect();
        refused(scope.pop().await, "the program's bindings")?;
        let mut staging_offsets = Vec::new();
        let mut staging_bytes = 0u64;
        for output in &program.outputs {
            staging_offsets.push(staging_bytes);
            staging_bytes += program.buffers[output.buffer].bytes;
        }
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xltc staging"),
            size: staging_bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            program,
            buffers,
            pipelines,
            bind_groups,
            staging,
            staging_offsets,
        })
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Runs the whole program once on `inputs` and returns its outputs by name.
    pub async fn run(
        &self,
        gpu: &Gpu,
        inputs: &ModelInputs,
    ) -> Result<BTreeMap<String, Output>, GpuError> {
        self.run_training(gpu, inputs, &TrainingInputs::default())
            .await
    }

    /// As [`Executor::run`], for a program that also reads training inputs
    /// (labels, the example mask, the word-embedding perturbation, the
    /// dropout key).
    pub async fn run_training(
        &self,
        gpu: &Gpu,
        inputs: &ModelInputs,
        training: &TrainingInputs,
    ) -> Result<BTreeMap<String, Output>, GpuError> {
        self.write_training_inputs(gpu, inputs, training)?;
        self.dispatch_and_read(gpu).await
    }

    /// Fills the input buffers from `inputs` and `training`, after checking
    /// the ids, with the derived inputs the program reads (each
    /// `<ids>.order`).
    pub(crate) fn write_training_inputs(
        &self,
        gpu: &Gpu,
        inputs: &ModelInputs,
        training: &TrainingInputs,
    ) -> Result<(), GpuError> {
        self.check_ids(inputs)?;
        let mut orders: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for spec in &self.program.buffers {
            if let BufferRole::Input(names) = &spec.role {
                for name in names {
                    if let Some(ids) = name.strip_suffix(ORDER_SUFFIX).and_then(|n| inputs.ids(n)) {
                        orders.insert(name, id_order(ids));
                    }
                }
            }
        }
        self.write_inputs(gpu, |name| match orders.get(name) {
            Some(order) => Some(bytemuck::cast_slice(order)),
            None => input_bytes(name, inputs, training),
        })
    }

    /// Runs the program with each input buffer filled from `input(name)`
    /// (its bytes, exactly as many as the buffer holds).
    pub async fn run_named<'a>(
        &self,
        gpu: &Gpu,
        input: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<BTreeMap<String, Output>, GpuError> {
        self.write_inputs(gpu, input)?;
        self.dispatch_and_read(gpu).await
    }

    /// Records every dispatch and the copies of the outputs, submits them,
    /// and reads the outputs back.
    async fn dispatch_and_read(&self, gpu: &Gpu) -> Result<BTreeMap<String, Output>, GpuError> {
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for index in 0..self.program.dispatches.len() {
                self.record(&mut pass, index);
            }
        }
        for (output, &offset) in self.program.outputs.iter().zip(&self.staging_offsets) {
            let bytes = self.program.buffers[output.buffer].bytes;
            encoder.copy_buffer_to_buffer(
                &self.buffers[output.buffer],
                0,
                &self.staging,
                offset,
                bytes,
            );
        }
        gpu.queue.submit([encoder.finish()]);
        refused(scope.pop().await, "the program's dispatches")?;
        self.read_back(gpu).await
    }

    /// Records dispatch `index` into `pass`.
    pub(crate) fn record(&self, pass: &mut wgpu::ComputePass<'_>, index: usize) {
        let dispatch = &self.program.dispatches[index];
        pass.set_pipeline(&self.pipelines[dispatch.kernel]);
        pass.set_bind_group(0, &self.bind_groups[index], &[]);
        let [x, y, z] = dispatch.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Refuses inputs of another bucket, and ids past their table (a GPU
    /// gather cannot fail).
    fn check_ids(&self, inputs: &ModelInputs) -> Result<(), GpuError> {
        if (inputs.batch, inputs.seq) != (self.program.batch, self.program.seq) {
            return Err(GpuError::Input {
                name: "batch".into(),
                message: format!(
                    "inputs are {} x {} tokens, the program was compiled for {} x {}",
                    inputs.batch, inputs.seq, self.program.batch, self.program.seq
                ),
            });
        }
        for bound in &self.program.id_bounds {
            let ids = inputs
                .ids(&bound.input)
                .ok_or_else(|| no_such_input(&bound.input))?;
            if let Some(&id) = ids.iter().find(|&&id| id >= bound.rows) {
                return Err(GpuError::Input {
                    name: bound.input.clone(),
                    message: format!(
                        "id {id} is past the {} rows of {}; does the tokenizer belong to this model?",
                        bound.rows, bound.table
                    ),
                });
            }
        }
        Ok(())
    }

    fn write_inputs<'a>(
        &self,
        gpu: &Gpu,
        input: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<(), GpuError> {
        for (spec, buffer) in self.program.buffers.iter().zip(&self.buffers) {
            let BufferRole::Input(names) = &spec.role else {
                continue;
            };
            let mut offset = 0;
            for name in names {
                let bytes = input(name).ok_or_else(|| no_such_input(name))?;
                offset += bytes.len() as u64;
                if offset > spec.bytes {
                    return Err(GpuError::Input {
                        name: name.clone(),
                        message: format!(
                            "{} bytes given, past the {} bytes of buffer {}",
                            bytes.len(),
                            spec.bytes,
                            spec.name
                        ),
                    });
                }
                gpu.queue
                    .write_buffer(buffer, offset - bytes.len() as u64, bytes);
            }
            if offset != spec.bytes {
                return Err(GpuError::Input {
                    name: names.join(", "),
                    message: format!(
                        "{offset} bytes given, buffer {} holds {}",
                        spec.name, spec.bytes
                    ),
                });
            }
        }
        Ok(())
    }

    /// Overwrites buffer `buffer` with `data` (a parameter or moment restored
    /// from a checkpoint).
    pub fn write_buffer(&self, gpu: &Gpu, buffer: usize, data: &[f32]) -> Result<(), GpuError> {
        let spec = &self.program.buffers[buffer];
        if data.len() as u64 * 4 != spec.bytes {
            return Err(GpuError::Input {
                name: spec.name.clone(),
                message: format!(
                    "{} values given, the buffer holds {}",
                    data.len(),
                    spec.bytes / 4
                ),
            });
        }
        gpu.queue
            .write_buffer(&self.buffers[buffer], 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// The contents of `buffers` (parameters, moments), read back after
    /// everything submitted so far, through staging buffers of at most
    /// [`READ_BACK_BYTES`] (a model's parameters can pass the adapter's
    /// largest buffer: XLM-R base's are 1.1 GB).
    pub async fn read_buffers(
        &self,
        gpu: &Gpu,
        buffers: &[usize],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let sizes: Vec<u64> = buffers
            .iter()
            .map(|&b| self.program.buffers[b].bytes)
            .collect();
        let mut out = Vec::with_capacity(buffers.len());
        let mut start = 0;
        while start < buffers.len() {
            let (mut end, mut total) = (start, 0);
            while end < buffers.len() && (end == start || total + sizes[end] <= READ_BACK_BYTES) {
                total += sizes[end];
                end += 1;
            }
            out.extend(
                self.read_group(gpu, &buffers[start..end], &sizes[start..end])
                    .await?,
            );
            start = end;
        }
        Ok(out)
    }

    /// `buffers` (of `sizes` bytes) through one staging buffer.
    async fn read_group(
        &self,
        gpu: &Gpu,
        buffers: &[usize],
        sizes: &[u64],
    ) -> Result<Vec<Vec<f32>>, GpuError> {
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xltc read back"),
            size: sizes.iter().sum::<u64>().max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let mut offset = 0;
        for (&buffer, &bytes) in buffers.iter().zip(sizes) {
            encoder.copy_buffer_to_buffer(&self.buffers[buffer], 0, &staging, offset, bytes);
            offset += bytes;
        }
        gpu.queue.submit([encoder.finish()]);
        map(gpu, &staging).await?;
        let mut out = Vec::new();
        {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            let mut offset = 0;
            for &bytes in sizes {
                let range = offset as usize..(offset + bytes) as usize;
                out.push(bytemuck::cast_slice(&view[range]).to_vec());
                offset += bytes;
            }
        }
        staging.destroy();
        Ok(out)
    }

    async fn read_back(&self, gpu: &Gpu) -> Result<BTreeMap<String, Output>, GpuError> {
        map(gpu, &self.staging).await?;
        let mut outputs = BTreeMap::new();
        {
            let view = self
                .staging
                .get_mapped_range(..)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            for (output, &offset) in self.program.outputs.iter().zip(&self.staging_offsets) {
                let bytes = self.program.buffers[output.buffer].bytes;
                let range = offset as usize..(offset + bytes) as usize;
                let data: Vec<f32> = bytemuck::cast_slice(&view[range]).to_vec();
                let shape = output.shape.clone();
                let count = shape.iter().product();
                outputs.insert(
                    output.name.clone(),
                    Output {
                        shape,
                        data: data[..count].to_vec(),
                    },
                );
            }
        }
        self.staging.unmap();
        Ok(outputs)
    }
}

/// An error a wgpu error scope caught, as a [`GpuError`].
fn refused(error: Option<wgpu::Error>, what: &str) -> Result<(), GpuError> {
    match error {
        Some(error) => Err(GpuError::Refused {
            what: what.into(),
            message: error.to_string(),
        }),
        None => Ok(()),
    }
}

fn no_such_input(name: &str) -> GpuError {
    GpuError::Input {
        name: name.into(),
        message: "the runtime has no such input".into(),
    }
}

/// Maps `staging` for reading, once everything submitted before has run.
// The browser has no blocking poll: there the map callback fires from its event loop.
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub(crate) async fn map(gpu: &Gpu, staging: &wgpu::Buffer) -> Result<(), GpuError> {
    let (sender, receiver) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        // The receiver only goes away if the run was abandoned.
        let _ = sender.send(result);
    });
    #[cfg(not(target_arch = "wasm32"))]
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Readback(e.to_string()))?;
    receiver
        .await
        .map_err(|e| GpuError::Readback(e.to_string()))?
        .map_err(|e| GpuError::Readback(e.to_string()))
}

fn create_buffers<'w>(
    gpu: &Gpu,
    program: &Program,
    shared: &WeightBuffers,
    weight: impl Fn(&str) -> Option<&'w [f32]>,
) -> Result<Vec<wgpu::Buffer>, GpuError> {
    program
        .buffers
        .iter()
        .map(|spec| match spec.role.shared() {
            true => shared.get_or_create(gpu, spec, &weight),
            false => Ok(new_buffer(gpu, spec)),
        })
        .collect()
}

impl WeightBuffers {
    /// Makes, and fills from `weight`, every buffer of `program` shared by
    /// role that is not here yet: after this for every program, the
    /// caller's copy of the weights is no longer needed.
    pub fn upload<'w>(
        &self,
        gpu: &Gpu,
        program: &Program,
        weight: impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<(), GpuError> {
        for spec in program.buffers.iter().filter(|s| s.role.shared()) {
            self.get_or_create(gpu, spec, &weight)?;
        }
        Ok(())
    }

    /// The buffer of `spec`'s role: an earlier program's, or a new one
    /// (weights written from `weight`, gradients and moments zero).
    fn get_or_create<'w>(
        &self,
        gpu: &Gpu,
        spec: &BufferSpec,
        weight: &impl Fn(&str) -> Option<&'w [f32]>,
    ) -> Result<wgpu::Buffer, GpuError> {
        if let Some(buffer) = self.0.borrow().get(&spec.role) {
            if buffer.size() != spec.bytes.max(4).next_multiple_of(4) {
                return Err(GpuError::Input {
                    name: spec.name.clone(),
                    message: format!(
                        "programs of one model disagree on this buffer's size ({} and {} bytes)",
                        buffer.size(),
                        spec.bytes
                    ),
                });
            }
            return Ok(buffer.clone());
        }
        let buffer = new_buffer(gpu, spec);
        if let BufferRole::Weight(slices) = &spec.role {
            let mut offset = 0;
            for data in weight_slices(slices, weight)? {
                gpu.queue
                    .write_buffer(&buffer, offset, bytemuck::cast_slice(data));
                offset += (data.len() * 4) as u64;
            }
            flush_uploads(gpu);
        }
        self.0
            .borrow_mut()
            .insert(spec.role.clone(), buffer.clone());
        Ok(buffer)
    }
}

/// A storage buffer of `spec`'s size, zero.
fn new_buffer(gpu: &Gpu, spec: &BufferSpec) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(&spec.name),
        size: spec.bytes.max(4).next_multiple_of(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// Submits the weight writes so far and waits for them, so that their
/// staging memory goes before the next weight's is taken
/// (the browser has no blocking wait; it keeps wgpu's own pace).
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
fn flush_uploads(gpu: &Gpu) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        gpu.queue.submit([]);
        // A failed wait leaves the copies to the next submit, as without it.
        let _ = gpu.device.poll(wgpu::PollType::wait_indefinitely());
    }
}

/// The data of each slice of a weight buffer, or an error naming the first
/// the caller cannot give.
fn weight_slices<'w>(
    slices: &[WeightSlice],
    weight: &impl Fn(&str) -> Option<&'w [f32]>,
) -> Result<Vec<&'w [f32]>, GpuError> {
    slices
        .iter()
        .map(|WeightSlice { name, first, count }| {
            weight(name)
                .and_then(|w| w.get(*first..first + count))
                .ok_or_else(|| GpuError::Input {
                    name: name.clone(),
                    message: format!(
                        "the program needs elements {first}..{} of this weight",
                        first + count
                    ),
                })
        })
        .collect()
}

/// A pipeline whose layout is the binding list of the kernel's first
/// dispatch: every dispatch of one kernel binds the same way.
fn create_pipeline(
    device: &wgpu::Device,
    program: &Program,
    kernel: usize,
) -> wgpu::ComputePipeline {
    let spec = &program.kernels[kernel];
    let dispatch = program
        .dispatches
        .iter()
        .find(|d| d.kernel == kernel)
        .expect("kernel is used");
    let entries: Vec<wgpu::BindGroupLayoutEntry> = dispatch
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: b.read_only,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(&spec.name),
        entries: &entries,
    });
    let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&spec.name),
        bind_group_layouts: &[Some(&bind_group_layout)],
        immediate_size: 0,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(&spec.name),
        source: wgpu::ShaderSource::Wgsl(spec.wgsl.as_str().into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&spec.name),
        layout: Some(&layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    })
}

fn create_bind_group(
    device: &wgpu::Device,
    pipeline: &wgpu::ComputePipeline,
    dispatch: &Dispatch,
    buffers: &[wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = dispatch
        .bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: buffers[b.buffer].as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}
