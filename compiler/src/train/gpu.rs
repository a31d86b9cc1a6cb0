//! The trainer's GPU side: the train-step programs (one a bucket of batch
//! rows x sequence length, compiled on first use), the optimizer program and
//! the forward programs of dev evaluation, all sharing the weight, gradient
//! and moment buffers, so parameters stay on the GPU from step to step; the
//! host reads them back only for a checkpoint. Every program is compiled
//! from the un-fused graphs, whose weights are the checkpoint's tensors one
//! a buffer: a fused program's packed weights would be other buffers.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use xltc_runtime::artifact::{Bucket, Training};
use xltc_runtime::program::{BufferRole, WeightSlice};
use xltc_runtime::{Executor, Gpu, GpuError, ModelInputs, Output, TrainingInputs, WeightBuffers};

use crate::codegen::{optimizer_input, CodegenOptions, OPTIMIZER_INPUT};
use crate::frontend::Model;
use crate::reference::{AdamW, Tensor};

use super::programs::{self, Parameter};
use super::{Pass, TrainError};

pub struct GpuSteps {
    gpu: Gpu,
    /// Every parameter's buffers, made by the optimizer program: the
    /// programs compiled later find them here.
    shared: WeightBuffers,
    train_steps: HashMap<(usize, usize), Executor>,
    ascents: HashMap<(usize, usize), Executor>,
    alignment_ascents: HashMap<(usize, usize), Executor>,
    alignment_steps: HashMap<(usize, usize), Executor>,
    forwards: HashMap<(usize, usize), Executor>,
    optimizer: Executor,
    /// The optimizer program's buffers of each part of each parameter (a
    /// whole parameter, or rows of a table past one binding): the part, and
    /// its weight, first moment and second moment, in parameter order.
    parameter_buffers: Vec<(WeightSlice, [usize; 3])>,
    /// Programs compiled ahead (an artifact's), used before compiling.
    stored: Option<Training>,
}

fn gpu_error(error: GpuError) -> TrainError {
    TrainError::Gpu(error.to_string())
}

impl GpuSteps {
    /// Uploads `params` ((name, shape, data), in the trainer's order) to the
    /// adapter wgpu finds, with the optimizer program for them: `stored`'s
    /// when given (its programs then serve every bucket they cover), else
    /// compiled now.
    pub fn new(
        params: &[Parameter],
        adam: &AdamW,
        stored: Option<Training>,
    ) -> Result<Self, TrainError> {
        let gpu = Gpu::new_blocking().map_err(gpu_error)?;
        let program = match &stored {
            Some(training) => training.optimizer.clone(),
            None => {
                let options = CodegenOptions::for_adapter(&gpu.adapter);
                programs::optimizer(&programs::shapes(params), adam, &options)?
            }
        };
        let find = |wanted: &BufferRole| {
            program
                .buffers
                .iter()
                .position(|b| b.role == *wanted)
                .expect("the optimizer program has every part's buffers")
        };
        // Parts in the optimizer's order: parameter order, rows in order.
        let parameter_buffers = program
            .buffers
            .iter()
            .filter_map(|b| match &b.role {
                BufferRole::Moment { of, order: 1 } => Some(of.clone()),
                _ => None,
            })
            .map(|slice| {
                let moment = |order| BufferRole::Moment {
                    of: slice.clone(),
                    order,
                };
                let weight = find(&BufferRole::Weight(vec![slice.clone()]));
                let buffers = [weight, find(&moment(1)), find(&moment(2))];
                (slice, buffers)
            })
            .collect();
        let shared = WeightBuffers::default();
        let optimizer = pollster::block_on(Executor::load_sharing(&gpu, program, &shared, |n| {
            params
                .iter()
                .find(|(name, _, _)| name == n)
                .map(|(_, _, d)| &d[..])
        }))
        .map_err(gpu_error)?;
        Ok(Self {
            gpu,
            shared,
            train_steps: HashMap::new(),
            ascents: HashMap::new(),
            alignment_ascents: HashMap::new(),
            alignment_steps: HashMap::new(),
            forwards: HashMap::new(),
            optimizer,
            parameter_buffers,
            stored,
        })
    }

    pub fn adapter(&self) -> String {
        self.gpu.adapter.to_string()
    }

    /// Runs `kind`'s program of the bucket of `inputs` (compiled on first
    /// use, or an artifact's train step) and returns its outputs: a train
    /// step's or an alignment step's gradients are added into the gradient
    /// buffers, and `loss` is read back; an ascent step's `loss` and
    /// `grad.word_embeddings` are read back, no parameter gradient computed.
    pub fn run(
        &mut self,
        kind: Pass,
        model: &Model,
        dropout: bool,
        inputs: &ModelInputs,
        training: &TrainingInputs,
    ) -> Result<BTreeMap<String, Output>, TrainError> {
        let key = (inputs.batch, inputs.seq);
        let stored = self.stored.as_ref().map(|t| &t.steps[..]);
        let options = CodegenOptions::for_adapter(&self.gpu.adapter);
        let options = &options;
        let (cache, build): (_, Box<dyn FnOnce() -> Result<Bucket, TrainError>>) = match kind {
            Pass::Task => (
                &mut self.train_steps,
                Box::new(|| programs::train_step(model, key.0, key.1, dropout, options)),
            ),
            Pass::Alignment(loss) => (
                &mut self.alignment_steps,
                Box::new(move || {
                    programs::alignment_step(model, key.0 / 2, key.1, dropout, loss, options)
                }),
            ),
            Pass::Ascent => (
                &mut self.ascents,
                Box::new(|| programs::ascent(model, key.0, key.1, dropout, options)),
            ),
            Pass::AlignmentAscent(loss) => (
                &mut self.alignment_ascents,
                Box::new(move || {
                    programs::alignment_ascent(model, key.0 / 2, key.1, dropout, loss, options)
                }),
            ),
        };
        let executor = cached(cache, key, &self.gpu, &self.shared, || {
            match find(stored, key).filter(|_| matches!(kind, Pass::Task)) {
                Some(program) => Ok(program),
                None => Ok(build()?.program),
            }
        })?;
        pollster::block_on(executor.run_training(&self.gpu, inputs, training)).map_err(gpu_error)
    }

    /// Clipping and AdamW over the summed gradients (zeroing them) for
    /// optimizer step `step` (from 1); returns the gradient norm.
    pub fn optimizer_step(
        &mut self,
        adam: &AdamW,
        step: u32,
        lr: f64,
        gradient_scale: f64,
        max_norm: f64,
    ) -> Result<f64, TrainError> {
        let scalars = optimizer_input(adam, step, lr, gradient_scale, max_norm);
        let input =
            |name: &str| (name == OPTIMIZER_INPUT).then(|| bytemuck::cast_slice(&scalars[..]));
        let out =
            pollster::block_on(self.optimizer.run_named(&self.gpu, input)).map_err(gpu_error)?;
        Ok(out["gradient_norm"].data[0] as f64)
    }

    /// The logits of a padded batch with the current parameters.
    pub fn logits(&mut self, model: &Model, inputs: &ModelInputs) -> Result<Tensor, TrainError> {
        let key = (inputs.batch, inputs.seq);
        let stored = self.stored.as_ref().map(|t| &t.forwards[..]);
        let executor = cached(
            &mut self.forwards,
            key,
            &self.gpu,
            &self.shared,
            || match find(stored, key) {
                Some(program) => Ok(program),
                None => {
                    let options = CodegenOptions::for_adapter(&self.gpu.adapter);
                    Ok(programs::forward(model, key.0, key.1, &options)?.program)
                }
            },
        )?;
        let mut out = pollster::block_on(executor.run(&self.gpu, inputs)).map_err(gpu_error)?;
        let logits = out
            .remove("logits")
            .expect("a classifier's graph gives logits");
        Ok(Tensor {
            shape: logits.shape,
            data: logits.data,
        })
    }

    /// Each parameter and its two moments, read back, in parameter order.
    pub fn read(&self) -> Result<Vec<[Vec<f32>; 3]>, TrainError> {
        let buffers: Vec<usize> = self
            .parameter_buffers
            .iter()
            .flat_map(|(_, b)| *b)
            .collect();
        let data = pollster::block_on(self.optimizer.read_buffers(&self.gpu, &buffers))
            .map_err(gpu_error)?;
        let mut values: Vec<[Vec<f32>; 3]> = Vec::new();
        let mut last: Option<&str> = None;
        for ((slice, _), part) in self.parameter_buffers.iter().zip(data.chunks(3)) {
            if last != Some(slice.name.as_str()) {
                values.push(Default::default());
                last = Some(&slice.name);
            }
            let value = values.last_mut().expect("pushed above");
            for (whole, piece) in value.iter_mut().zip(part) {
                whole.extend_from_slice(piece);
            }
        }
        Ok(values)
    }

    /// Overwrites every parameter and moment (a restored state), in
    /// parameter order.
    pub fn write(&self, values: &[[&[f32]; 3]]) -> Result<(), TrainError> {
        let mut index = 0;
        let mut last: Option<&str> = None;
        for (slice, buffers) in &self.parameter_buffers {
            if last.is_some_and(|l| l != slice.name) {
                index += 1;
            }
            last = Some(&slice.name);
            let part = slice.first..slice.first + slice.count;
            for (&buffer, data) in buffers.iter().zip(&values[index]) {
                self.optimizer
                    .write_buffer(&self.gpu, buffer, &data[part.clone()])
                    .map_err(gpu_error)?;
            }
        }
        Ok(())
    }
}

/// The program of bucket `key` among `stored`, if any.
fn find(stored: Option<&[Bucket]>, key: (usize, usize)) -> Option<xltc_runtime::Program> {
    stored?
        .iter()
        .find(|b| (b.program.batch, b.program.seq) == key)
        .map(|b| b.program.clone())
}

/// The executor of bucket `key` from `cache`, compiled by `build` and
/// loaded on first use. Its weights are all parameters the optimizer
/// program made buffers for, found in `shared`.
fn cached<'c>(
    cache: &'c mut HashMap<(usize, usize), Executor>,
    key: (usize, usize),
    gpu: &Gpu,
    shared: &WeightBuffers,
    build: impl FnOnce() -> Result<xltc_runtime::Program, TrainError>,
) -> Result<&'c Executor, TrainError> {
    match cache.entry(key) {
        Entry::Occupied(entry) => Ok(entry.into_mut()),
        Entry::Vacant(entry) => {
            let executor = Executor::load_sharing(gpu, build()?, shared, |_| None);
            Ok(entry.insert(pollster::block_on(executor).map_err(gpu_error)?))
        }
    }
}
