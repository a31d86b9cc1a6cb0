//! Runs a [`Program`] on a [`Gpu`]: buffers, pipelines and bind groups are made
//! once at load; each run writes the inputs, records every dispatch in one
//! command encoder and one compute pass, copies the outputs to one staging
//! buffer, submits once, and reads back asynchronously.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::device::{Gpu, GpuError};
use crate::inputs::ModelInputs;
use crate::program::{BufferRole, Dispatch, Program, WeightSlice};

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

/// Weight buffers by what they hold, shared by the executors of one model's
/// programs: every bucket binds the same weights, uploaded once.
#[derive(Default)]
pub struct WeightBuffers(RefCell<HashMap<Vec<WeightSlice>, wgpu::Buffer>>);

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
        let buffers = create_buffers(gpu, &program, shared, weight)?;
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
        let bind_groups = program
            .dispatches
            .iter()
            .map(|d| create_bind_group(device, &pipelines[d.kernel], d, &buffers))
            .collect();
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
        self.write_inputs(gpu, inputs)?;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for (dispatch, bind_group) in self.program.dispatches.iter().zip(&self.bind_groups) {
                pass.set_pipeline(&self.pipelines[dispatch.kernel]);
                pass.set_bind_group(0, bind_group, &[]);
                let [x, y, z] = dispatch.workgroups;
                pass.dispatch_workgroups(x, y, z);
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
        self.read_back(gpu).await
    }

    fn write_inputs(&self, gpu: &Gpu, inputs: &ModelInputs) -> Result<(), GpuError> {
        if (inputs.batch, inputs.seq) != (self.program.batch, self.program.seq) {
            return Err(GpuError::Input {
                name: "batch".into(),
                message: format!(
                    "inputs are {} x {} tokens, the program was compiled for {} x {}",
                    inputs.batch, inputs.seq, self.program.batch, self.program.seq
                ),
            });
        }
        let no_such_input = |name: &str| GpuError::Input {
            name: name.into(),
            message: "the runtime has no such input".into(),
        };
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
        for (spec, buffer) in self.program.buffers.iter().zip(&self.buffers) {
            let BufferRole::Input(names) = &spec.role else {
                continue;
            };
            let mut offset = 0;
            for name in names {
                let bytes: &[u8] = match name.as_str() {
                    "attention_mask" => bytemuck::cast_slice(&inputs.attention_mask),
                    ids => bytemuck::cast_slice(inputs.ids(ids).ok_or_else(|| no_such_input(ids))?),
                };
                gpu.queue.write_buffer(buffer, offset, bytes);
                offset += bytes.len() as u64;
            }
        }
        Ok(())
    }

    // The browser has no blocking poll: there the map callback fires from its event loop.
    #[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
    async fn read_back(&self, gpu: &Gpu) -> Result<BTreeMap<String, Output>, GpuError> {
        let (sender, receiver) = futures_channel::oneshot::channel();
        self.staging
            .map_async(wgpu::MapMode::Read, .., move |result| {
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
            .map_err(|e| GpuError::Readback(e.to_string()))?;
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

fn create_buffers<'w>(
    gpu: &Gpu,
    program: &Program,
    shared: &WeightBuffers,
    weight: impl Fn(&str) -> Option<&'w [f32]>,
) -> Result<Vec<wgpu::Buffer>, GpuError> {
    let limit = gpu.adapter.max_storage_binding_bytes;
    if let Some(spec) = program.buffers.iter().find(|b| b.bytes > limit) {
        return Err(GpuError::TooLarge {
            buffer: spec.name.clone(),
            bytes: spec.bytes,
            limit,
        });
    }
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    let mut buffers = Vec::with_capacity(program.buffers.len());
    for spec in &program.buffers {
        if let BufferRole::Weight(slices) = &spec.role {
            if let Some(buffer) = shared.0.borrow().get(slices) {
                buffers.push(buffer.clone());
                continue;
            }
        }
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&spec.name),
            size: spec.bytes.max(4).next_multiple_of(4),
            usage,
            mapped_at_creation: false,
        });
        if let BufferRole::Weight(slices) = &spec.role {
            let mut offset = 0;
            for WeightSlice { name, first, count } in slices {
                let data = weight(name)
                    .and_then(|w| w.get(*first..first + count))
                    .ok_or_else(|| GpuError::Input {
                        name: name.clone(),
                        message: format!(
                            "the program needs elements {first}..{} of this weight",
                            first + count
                        ),
                    })?;
                gpu.queue
                    .write_buffer(&buffer, offset, bytemuck::cast_slice(data));
                offset += (count * 4) as u64;
            }
            shared.0.borrow_mut().insert(slices.clone(), buffer.clone());
        }
        buffers.push(buffer);
    }
    Ok(buffers)
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
