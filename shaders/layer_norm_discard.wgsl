// layer_norm without a backward to serve: its statistics are not kept.
fn save_statistics(row: u32, thread: u32, mean: f32, inv_std: f32) {}
