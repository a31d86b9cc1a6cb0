//! Where a program's time goes: the time of each dispatch of one run. On an
//! adapter with timestamp queries each dispatch runs in its own compute
//! pass with timestamps at its start and end (GPU time only); elsewhere
//! each dispatch is submitted on its own and waited for (the time then
//! includes a submit and a wait, tens of microseconds on a GPU, small
//! against a software adapter's dispatches). Native only.

use std::time::Instant;

use crate::device::{Gpu, GpuError};
use crate::executor::Executor;
use crate::inputs::{ModelInputs, TrainingInputs};

/// How a profile's times were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamps around each dispatch.
    Timestamps,
    /// The host's clock around a submit and wait of each dispatch.
    Submits,
}

impl Clock {
    pub fn describe(self) -> &'static str {
        match self {
            Clock::Timestamps => "GPU timestamps around each dispatch",
            Clock::Submits => {
                "each dispatch submitted and waited for on its own (this adapter has no \
                 timestamp queries): times include a submit and a wait"
            }
        }
    }
}

pub struct Profile {
    pub clock: Clock,
    /// Seconds of each dispatch, in program order.
    pub seconds: Vec<f64>,
}

/// Timestamps a query set holds: two a dispatch.
const QUERIES: usize = wgpu::QUERY_SET_MAX_QUERIES as usize;

impl Executor {
    /// Times each dispatch of one run on `inputs` and `training`. The
    /// outputs are not read back; the buffers are left as a run leaves them.
    pub async fn profile(
        &self,
        gpu: &Gpu,
        inputs: &ModelInputs,
        training: &TrainingInputs,
    ) -> Result<Profile, GpuError> {
        self.write_training_inputs(gpu, inputs, training)?;
        self.profile_dispatches(gpu).await
    }

    /// Times each dispatch of one run on the inputs the last run wrote (a
    /// program whose inputs are not model inputs: the optimizer step's).
    pub async fn profile_dispatches(&self, gpu: &Gpu) -> Result<Profile, GpuError> {
        if gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            let mut seconds = Vec::new();
            let dispatches: Vec<usize> = (0..self.program().dispatches.len()).collect();
            for chunk in dispatches.chunks(QUERIES / 2) {
                seconds.extend(self.timestamps(gpu, chunk).await?);
            }
            return Ok(Profile {
                clock: Clock::Timestamps,
                seconds,
            });
        }
        let mut seconds = Vec::new();
        for index in 0..self.program().dispatches.len() {
            let start = Instant::now();
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.record(&mut pass, index);
            }
            gpu.queue.submit([encoder.finish()]);
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            seconds.push(start.elapsed().as_secs_f64());
        }
        Ok(Profile {
            clock: Clock::Submits,
            seconds,
        })
    }

    /// The GPU time of each of `dispatches`, each in a pass of its own.
    async fn timestamps(&self, gpu: &Gpu, dispatches: &[usize]) -> Result<Vec<f64>, GpuError> {
        let device = &gpu.device;
        let count = 2 * dispatches.len() as u32;
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("xltc profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let bytes = count as u64 * wgpu::QUERY_SIZE as u64;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xltc profile timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xltc profile read back"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        for (slot, &index) in dispatches.iter().enumerate() {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * slot as u32),
                end_of_pass_write_index: Some(2 * slot as u32 + 1),
            };
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(writes),
            });
            self.record(&mut pass, index);
        }
        encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
        gpu.queue.submit([encoder.finish()]);
        crate::executor::map(gpu, &staging).await?;
        let period = gpu.queue.get_timestamp_period() as f64 * 1e-9;
        let seconds = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            ticks
                .chunks(2)
                .map(|pair| pair[1].saturating_sub(pair[0]) as f64 * period)
                .collect()
        };
        staging.destroy();
        Ok(seconds)
    }
}
