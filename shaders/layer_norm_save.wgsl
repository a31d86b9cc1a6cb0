// layer_norm's statistics kept for the backward: each row's mean and
// 1 / std, written by the row's first thread.
@group(0) @binding(4) var<storage, read_write> statistics: array<f32>;

fn save_statistics(row: u32, thread: u32, mean: f32, inv_std: f32) {
    if (thread == 0u) {
        statistics[2u * row] = mean;
        statistics[2u * row + 1u] = inv_std;
    }
}
