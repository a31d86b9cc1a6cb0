//! xltc: compiles multilingual encoders (mBERT, XLM-R and relatives) into
//! static graphs, with a CPU reference that every GPU kernel is checked against.

pub mod codegen;
pub mod compile;
pub mod evaluate;
pub mod frontend;
pub mod ir;
pub mod passes;
pub mod plot;
pub mod predict;
pub mod reference;
pub mod train;
pub mod tune;
