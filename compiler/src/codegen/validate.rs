//! Every emitted module is parsed and validated by naga before it is written:
//! a module naga rejects is a compiler bug, reported with the kernel's name.

pub fn validate_wgsl(wgsl: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| e.emit_to_string(wgsl))?;
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    validator
        .validate(&module)
        .map_err(|e| e.emit_to_string(wgsl))?;
    Ok(())
}
