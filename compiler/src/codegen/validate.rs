//! Every emitted module is parsed and validated by naga before it is written:
//! a module naga rejects is a compiler bug, reported with the kernel's name.

pub fn validate_wgsl(wgsl: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| e.emit_to_string(wgsl))?;
    // Subgroup operations are allowed: a kernel that uses them says so
    // (KernelSpec::min_subgroup_size) and the runtime checks the adapter.
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SUBGROUP,
    );
    validator
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    validator
        .validate(&module)
        .map_err(|e| e.emit_to_string(wgsl))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_wgsl;

    #[test]
    fn naga_rejects_a_broken_module_with_a_located_message() {
        let broken = "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }";
        let message = validate_wgsl(broken).unwrap_err();
        assert!(
            message.contains("main") || message.contains("1u"),
            "{message}"
        );
        validate_wgsl("@compute @workgroup_size(1) fn main() {}").unwrap();
    }
}
