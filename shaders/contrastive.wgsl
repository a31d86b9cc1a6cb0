// contrastive: symmetric InfoNCE of sentences and their translations. x
// holds PAIRS rows, then their translations in the same order. Over the R
// pairs whose example_mask entry (the first row's) is not 0, with u_i and
// v_j the unit rows of sentence i and translation j and
// s_ij = u_i . v_j / temperature, the loss is
//   sum_i m_i ((lse_j s_ij - s_ii) + (lse_j s_ji - s_ii)) / (2 R),
// j over the real pairs only. Chosen by MODE:
//   0: the loss, one thread for the whole batch (out [1]);
//   1: its gradient, one thread a row (out [2 PAIRS, WIDTH]): with
//      d_ij = (m_i (P_ij - [i = j]) + m_j (Q_ij - [i = j])) / (2 R temperature),
//      P the softmax of row i of s and Q that of column j, a sentence's
//      g = sum_j d_ij v_j (a translation's: sum_i d_ij u_i), and the row's
//      gradient (g - (g . u) u) / |row| through the normalisation.
// A zero row counts as norm 1e-12; a pair whose mask is 0 gets a zero
// gradient. The temperature comes as its f32 bits (TEMPERATURE_BITS).
// Inputs:  x [2 PAIRS, WIDTH] f32, example_mask [2 PAIRS] f32
// Output:  out, as the mode says
const PAIRS: u32 = {{PAIRS}}u;
const WIDTH: u32 = {{WIDTH}}u;
const MODE: u32 = {{MODE}}u;
const WORKGROUP: u32 = {{WORKGROUP}}u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> example_mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn temperature() -> f32 {
    return bitcast<f32>({{TEMPERATURE_BITS}}u);
}

fn real(pair: u32) -> bool {
    return example_mask[pair] != 0.0;
}

// The norm of row `row` of x, at least 1e-12.
fn norm(row: u32) -> f32 {
    var sum = 0.0;
    for (var k = 0u; k < WIDTH; k++) {
        let v = x[row * WIDTH + k];
        sum = fma(v, v, sum);
    }
    return max(sqrt(sum), 1e-12);
}

// s_ij: the cosine of sentence i and translation j over the temperature.
fn score(i: u32, j: u32) -> f32 {
    let a = i * WIDTH;
    let b = (PAIRS + j) * WIDTH;
    var dot = 0.0;
    for (var k = 0u; k < WIDTH; k++) {
        dot = fma(x[a + k], x[b + k], dot);
    }
    return dot / (norm(i) * norm(PAIRS + j) * temperature());
}

// logsumexp over the real pairs of row i of s (`column` false) or of
// column i (`column` true), in one pass with a running maximum.
fn logsumexp(i: u32, column: bool) -> f32 {
    var top = -3.0e38;
    var sum = 0.0;
    for (var j = 0u; j < PAIRS; j++) {
        if (!real(j)) {
            continue;
        }
        var s: f32;
        if (column) {
            s = score(j, i);
        } else {
            s = score(i, j);
        }
        if (s > top) {
            sum = sum * exp(top - s);
            top = s;
        }
        sum += exp(s - top);
    }
    return top + log(sum);
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    var count = 0.0;
    for (var i = 0u; i < PAIRS; i++) {
        count += select(0.0, 1.0, real(i));
    }
    count = max(count, 1.0);
    if (MODE == 0u) {
        if (gid.x != 0u) {
            return;
        }
        var loss = 0.0;
        for (var i = 0u; i < PAIRS; i++) {
            if (real(i)) {
                let own = score(i, i);
                loss += example_mask[i] * ((logsumexp(i, false) - own) + (logsumexp(i, true) - own));
            }
        }
        out[0] = loss / (2.0 * count);
        return;
    }
    let row = gid.x;
    if (row >= 2u * PAIRS) {
        return;
    }
    // This row's pair and side; the other side's rows are the candidates.
    let translation = row >= PAIRS;
    let pair = select(row, row - PAIRS, translation);
    let start = row * WIDTH;
    for (var k = 0u; k < WIDTH; k++) {
        out[start + k] = 0.0;
    }
    if (!real(pair)) {
        return;
    }
    let own_lse = logsumexp(pair, translation);
    let scale = 1.0 / (2.0 * count * temperature());
    for (var other = 0u; other < PAIRS; other++) {
        if (!real(other)) {
            continue;
        }
        // (i, j): the sentence and the translation of this score.
        let i = select(pair, other, translation);
        let j = select(other, pair, translation);
        let s = score(i, j);
        // A sentence's own row of s, and the column of each candidate; a
        // translation's own column, and the row of each candidate.
        var row_lse = own_lse;
        var column_lse = own_lse;
        if (translation) {
            row_lse = logsumexp(i, false);
        } else {
            column_lse = logsumexp(j, true);
        }
        let same = select(0.0, 1.0, i == j);
        let d = (example_mask[i] * (exp(s - row_lse) - same)
            + example_mask[j] * (exp(s - column_lse) - same)) * scale;
        let candidate = select(PAIRS + other, other, translation);
        let weight = d / norm(candidate);
        for (var k = 0u; k < WIDTH; k++) {
            out[start + k] = fma(weight, x[candidate * WIDTH + k], out[start + k]);
        }
    }
    // Through the normalisation: (g - (g . u) u) / |row|.
    let length = norm(row);
    var along = 0.0;
    for (var k = 0u; k < WIDTH; k++) {
        along = fma(out[start + k], x[start + k] / length, along);
    }
    for (var k = 0u; k < WIDTH; k++) {
        out[start + k] = (out[start + k] - along * x[start + k] / length) / length;
    }
}
