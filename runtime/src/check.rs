//! Checks a program against what the executor and its kernels rely on,
//! before anything is created or recorded: the checksum of an artifact
//! guards against corruption, not against a manifest someone edited and
//! re-hashed. A program that passes makes no index, slice, size or limit in
//! the executor fail; what it cannot see (whether a kernel's constants fit
//! the buffers it binds) stays guarded by wgpu's own bounds checks, which
//! the executor keeps on for that reason.

use std::collections::HashMap;

use crate::program::{BufferRole, Program};

/// The adapter's limits a program must stay within.
#[derive(Clone, Copy, Debug)]
pub struct ProgramLimits {
    pub max_buffer_bytes: u64,
    pub max_storage_binding_bytes: u64,
    pub max_storage_buffers_per_dispatch: u32,
    pub max_workgroups_per_dimension: u32,
    /// The fewest lanes a subgroup of the adapter has, 0 where the device
    /// has no subgroup operations.
    pub subgroup_min_size: u32,
}

impl ProgramLimits {
    /// No limit: what an artifact is checked against before an adapter is
    /// known.
    pub fn none() -> Self {
        Self {
            max_buffer_bytes: u64::MAX,
            max_storage_binding_bytes: u64::MAX,
            max_storage_buffers_per_dispatch: u32::MAX,
            max_workgroups_per_dimension: u32::MAX,
            subgroup_min_size: u32::MAX,
        }
    }

    /// A device's limits; `subgroup_min_size` as [`crate::AdapterReport`]
    /// has it.
    pub fn of(limits: &wgpu::Limits, subgroup_min_size: u32) -> Self {
        Self {
            max_buffer_bytes: limits.max_buffer_size,
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
            max_storage_buffers_per_dispatch: limits.max_storage_buffers_per_shader_stage,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            subgroup_min_size,
        }
    }
}

/// What is wrong with a program, naming the buffer, kernel, dispatch or
/// output.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct ProgramError {
    pub what: String,
    pub message: String,
}

fn refuse(what: impl Into<String>, message: impl Into<String>) -> ProgramError {
    ProgramError {
        what: what.into(),
        message: message.into(),
    }
}

impl Program {
    /// Refuses a program that breaks an invariant of the executor, or a
    /// limit of the adapter.
    pub fn check(&self, limits: &ProgramLimits) -> Result<(), ProgramError> {
        self.check_token_inputs()?;
        self.check_kernels(limits)?;
        self.check_buffers(limits)?;
        self.check_dispatches(limits)?;
        self.check_outputs()
    }

    /// Token-shaped inputs hold batch x seq values: ties the shape the
    /// session pads to to the size of a buffer.
    fn check_token_inputs(&self) -> Result<(), ProgramError> {
        const TOKEN_INPUTS: [&str; 4] = [
            "input_ids",
            "token_type_ids",
            "position_ids",
            "attention_mask",
        ];
        let tokens = (self.batch as u64).checked_mul(self.seq as u64);
        for spec in &self.buffers {
            let BufferRole::Input(names) = &spec.role else {
                continue;
            };
            if names.is_empty() || !names.iter().all(|n| TOKEN_INPUTS.contains(&n.as_str())) {
                continue;
            }
            let needed = tokens.and_then(|t| t.checked_mul(4 * names.len() as u64));
            if needed != Some(spec.bytes) {
                return Err(refuse(
                    format!("buffer {}", spec.name),
                    format!(
                        "{} bytes, but {} x {} tokens of {} need {needed:?}",
                        spec.bytes,
                        self.batch,
                        self.seq,
                        names.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A kernel that uses subgroups says how large they must be, and the
    /// adapter's are at least that: a broadcast from a lane a smaller
    /// subgroup lacks would give wrong numbers, not an error.
    fn check_kernels(&self, limits: &ProgramLimits) -> Result<(), ProgramError> {
        for kernel in &self.kernels {
            let what = || format!("kernel {}", kernel.name);
            let subgroups = ["subgroupBroadcast", "subgroupShuffle", "@builtin(subgroup_"];
            let uses_subgroups = subgroups.iter().any(|s| kernel.wgsl.contains(s));
            if uses_subgroups && kernel.min_subgroup_size == 0 {
                return Err(refuse(
                    what(),
                    "uses subgroups but does not say how many lanes it needs (min_subgroup_size)",
                ));
            }
            if kernel.min_subgroup_size > limits.subgroup_min_size {
                let has = match limits.subgroup_min_size {
                    0 => "no subgroup operations".to_owned(),
                    n => format!("subgroups of {n} lanes"),
                };
                return Err(refuse(
                    what(),
                    format!(
                        "needs subgroups of at least {} lanes and this adapter has {has}; \
                         compile again without --tune's subgroup kernel (or --tune on this adapter)",
                        kernel.min_subgroup_size
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_buffers(&self, limits: &ProgramLimits) -> Result<(), ProgramError> {
        let bound = limits
            .max_storage_binding_bytes
            .min(limits.max_buffer_bytes);
        for spec in &self.buffers {
            let what = || format!("buffer {}", spec.name);
            if spec.bytes % 4 != 0 {
                return Err(refuse(
                    what(),
                    format!("{} bytes, not whole f32 or u32 values", spec.bytes),
                ));
            }
            if spec.bytes > bound {
                return Err(refuse(
                    what(),
                    format!(
                        "{} bytes, past this adapter's binding limit of {bound} bytes \
                         (max_storage_buffer_binding_size); recompile for this adapter",
                        spec.bytes
                    ),
                ));
            }
            let needed = match &spec.role {
                BufferRole::Weight(slices) => slices
                    .iter()
                    .try_fold(0u64, |sum, s| sum.checked_add(s.count as u64)),
                BufferRole::Gradient(slice) | BufferRole::Moment { of: slice, .. } => {
                    Some(slice.count as u64)
                }
                BufferRole::Input(_) | BufferRole::Activation => continue,
            };
            if needed.and_then(|n| n.checked_mul(4)) != Some(spec.bytes) {
                return Err(refuse(
                    what(),
                    format!(
                        "{} bytes, but its weight slices hold {needed:?} values",
                        spec.bytes
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_dispatches(&self, limits: &ProgramLimits) -> Result<(), ProgramError> {
        // Every dispatch of a kernel binds as its first does: the pipeline's layout.
        let mut layouts: HashMap<usize, Vec<bool>> = HashMap::new();
        for (index, dispatch) in self.dispatches.iter().enumerate() {
            let what = || format!("dispatch {index}");
            let Some(kernel) = self.kernels.get(dispatch.kernel) else {
                return Err(refuse(
                    what(),
                    format!("kernel {} does not exist", dispatch.kernel),
                ));
            };
            let what = || format!("dispatch {index} ({})", kernel.name);
            let max = limits.max_workgroups_per_dimension;
            if dispatch.workgroups.iter().any(|&w| w > max) {
                return Err(refuse(
                    what(),
                    format!(
                        "{:?} workgroups, past the adapter's {max} a dimension",
                        dispatch.workgroups
                    ),
                ));
            }
            if dispatch.bindings.len() > limits.max_storage_buffers_per_dispatch as usize {
                return Err(refuse(
                    what(),
                    format!(
                        "{} storage buffers, past the adapter's {}",
                        dispatch.bindings.len(),
                        limits.max_storage_buffers_per_dispatch
                    ),
                ));
            }
            for (i, binding) in dispatch.bindings.iter().enumerate() {
                if binding.buffer >= self.buffers.len() {
                    return Err(refuse(
                        what(),
                        format!("binding {i}: buffer {} does not exist", binding.buffer),
                    ));
                }
                let written_elsewhere = dispatch.bindings.iter().enumerate().any(|(j, other)| {
                    j != i
                        && other.buffer == binding.buffer
                        && !(other.read_only && binding.read_only)
                });
                if written_elsewhere {
                    return Err(refuse(
                        what(),
                        format!(
                            "buffer {} is bound twice and written",
                            self.buffers[binding.buffer].name
                        ),
                    ));
                }
            }
            let layout: Vec<bool> = dispatch.bindings.iter().map(|b| b.read_only).collect();
            let first = layouts
                .entry(dispatch.kernel)
                .or_insert_with(|| layout.clone());
            if *first != layout {
                return Err(refuse(
                    what(),
                    "binds its kernel differently from the kernel's first dispatch",
                ));
            }
        }
        if let Some(unused) = (0..self.kernels.len()).find(|k| !layouts.contains_key(k)) {
            return Err(refuse(
                format!("kernel {}", self.kernels[unused].name),
                "no dispatch runs it",
            ));
        }
        Ok(())
    }

    fn check_outputs(&self) -> Result<(), ProgramError> {
        for output in &self.outputs {
            let what = || format!("output {}", output.name);
            let Some(spec) = self.buffers.get(output.buffer) else {
                return Err(refuse(
                    what(),
                    format!("buffer {} does not exist", output.buffer),
                ));
            };
            let values = output
                .shape
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64));
            if values
                .and_then(|v| v.checked_mul(4))
                .is_none_or(|b| b > spec.bytes)
            {
                return Err(refuse(
                    what(),
                    format!(
                        "shape {:?} does not fit the {} bytes of buffer {}",
                        output.shape, spec.bytes, spec.name
                    ),
                ));
            }
        }
        Ok(())
    }
}
