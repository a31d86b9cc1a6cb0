//! The graph IR: values in an arena, each either a graph input, a weight, or
//! the result of one op over earlier values. Shapes are static: batch and
//! sequence length are fixed when the graph is built. Values are stored in
//! topological order, so executing them in arena order is always valid.

use std::sync::Arc;

/// A handle to a value in a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(usize);

impl ValueId {
    pub fn index(self) -> usize {
        self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

/// What [`Op::Alignment`] measures of n sentences and their translations,
/// the mean over real pairs (each weighed by its mask entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlignmentLoss {
    /// 1 - cos(sentence, translation): pulls a pair together, and nothing
    /// keeps a sentence apart from the other sentences' translations.
    #[default]
    Cosine,
    /// Symmetric InfoNCE over the real pairs of the batch: with
    /// s_ij = cos(sentence i, translation j) / temperature, the mean of
    /// (logsumexp_j s_ij - s_ii) and (logsumexp_j s_ji - s_ii), so each
    /// sentence must be nearer its own translation than the others' (and
    /// each translation nearer its own sentence).
    Contrastive { temperature: f64 },
    /// On the classification head's logits, not the pooled states: the
    /// symmetric KL divergence KL(p || q) + KL(q || p) between the head's
    /// distributions p for an English training pair and q for the same pair
    /// with its sentences replaced by translations.
    SymmetricKl,
}

impl AlignmentLoss {
    /// Whether the term measures the head's output distribution (its x is
    /// the logits of pairs) rather than mean-pooled states of sentences.
    pub fn on_head(&self) -> bool {
        matches!(self, AlignmentLoss::SymmetricKl)
    }
}

/// A graph input, filled by the caller before every run. The encoder's four
/// are [batch * seq]; training adds the labels and the real-example mask
/// [batch], and a perturbation added to the word embeddings [batch * seq,
/// width] (zero for vanilla training; adversarial training writes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Token ids (u32).
    InputIds,
    /// Segment ids: 0 for the first sentence, 1 for the second (u32).
    TokenTypeIds,
    /// Position ids, already offset for RoBERTa (u32).
    PositionIds,
    /// 1.0 for a real token, 0.0 for padding (f32).
    AttentionMask,
    /// The gold label of each sequence (u32).
    Labels,
    /// 1.0 for a real example, 0.0 for a row that only pads the batch (f32).
    ExampleMask,
    /// Added to the gathered word embeddings, before the position and token
    /// type sums and LayerNorm (f32).
    WordEmbeddingDelta { width: usize },
    /// What dropout's Philox streams are keyed by: the seed (low and high
    /// words), the optimizer step and the micro-batch, [4] (u32).
    DropoutKey,
}

impl Input {
    pub fn dtype(self) -> DType {
        match self {
            Input::AttentionMask | Input::ExampleMask | Input::WordEmbeddingDelta { .. } => {
                DType::F32
            }
            Input::DropoutKey => DType::U32,
            _ => DType::U32,
        }
    }

    /// The name programs and the runtime know the input by.
    pub fn name(self) -> &'static str {
        match self {
            Input::InputIds => "input_ids",
            Input::TokenTypeIds => "token_type_ids",
            Input::PositionIds => "position_ids",
            Input::AttentionMask => "attention_mask",
            Input::Labels => "labels",
            Input::ExampleMask => "example_mask",
            Input::WordEmbeddingDelta { .. } => "word_embedding_delta",
            Input::DropoutKey => "dropout_key",
        }
    }

    pub fn shape(self, batch: usize, seq: usize) -> Vec<usize> {
        match self {
            Input::Labels | Input::ExampleMask => vec![batch],
            Input::WordEmbeddingDelta { width } => vec![batch * seq, width],
            Input::DropoutKey => vec![4],
            _ => vec![batch * seq],
        }
    }
}

/// One operation. Token-wise activations are [tokens, width] with tokens =
/// batch * seq; attention scores are [batch, heads, seq, seq].
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Rows of `table` [rows, width] picked by `ids` [n]: [n, width].
    Gather { table: ValueId, ids: ValueId },
    /// Element-wise sum of two values of one shape.
    Add { a: ValueId, b: ValueId },
    /// `x` [m, k] times `weight` [n, k] transposed: [m, n]. The weight is in
    /// PyTorch's `Linear` layout (out_features, in_features).
    MatMul { x: ValueId, weight: ValueId },
    /// `x` [m, n] plus `bias` [n] on every row.
    AddBias { x: ValueId, bias: ValueId },
    /// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)), element-wise.
    Gelu { x: ValueId },
    /// tanh, element-wise.
    Tanh { x: ValueId },
    /// LayerNorm over the last axis of `x` [m, n] with `gamma`, `beta` [n]:
    /// biased variance, `eps` inside the square root.
    LayerNorm {
        x: ValueId,
        gamma: ValueId,
        beta: ValueId,
        eps: f32,
    },
    /// Scaled dot products between the queries and keys of each head:
    /// `query`, `key` [batch * seq, heads * head_dim] give
    /// [batch, heads, seq, seq], scaled by 1 / sqrt(head_dim).
    AttentionScores {
        query: ValueId,
        key: ValueId,
        heads: usize,
    },
    /// Softmax over the last axis of `scores` [batch, heads, seq, seq] in which
    /// keys with `mask` [batch * seq] = 0 get probability 0.
    MaskedSoftmax { scores: ValueId, mask: ValueId },
    /// The attention-weighted sum of values: `probs` [batch, heads, seq, seq]
    /// and `value` [batch * seq, heads * head_dim] give [batch * seq, heads * head_dim].
    AttentionContext {
        probs: ValueId,
        value: ValueId,
        heads: usize,
    },
    /// The first token of every sequence: [batch * seq, width] to [batch, width].
    FirstToken { x: ValueId },
    /// The mean over each sequence's real tokens: `x` [batch * seq, width] and
    /// `mask` [batch * seq] give [batch, width].
    MeanPool { x: ValueId, mask: ValueId },
    /// Each row divided by its L2 norm (at least 1e-12): [m, n].
    L2Normalize { x: ValueId },
    /// Softmax over the last axis: [m, n].
    Softmax { x: ValueId },
    /// Fused: `x` [m, k] times `weight` [n, k] transposed, plus `bias` [n],
    /// then the exact GELU when `gelu`: [m, n]. (MatMul, AddBias, Gelu.)
    Linear {
        x: ValueId,
        weight: ValueId,
        bias: ValueId,
        gelu: bool,
    },
    /// Fused: scaled scores, padding mask, softmax and weighted sum in one:
    /// [batch * seq, heads * head_dim]. (AttentionScores, MaskedSoftmax,
    /// AttentionContext.) When `packed`, `query`, `key` and `value` are one
    /// value [batch * seq, 3 * heads * head_dim] holding Q, K and V side by
    /// side in each row (the output of the fused Q/K/V projection).
    Attention {
        query: ValueId,
        key: ValueId,
        value: ValueId,
        mask: ValueId,
        heads: usize,
        packed: bool,
    },
    /// Fused embeddings: rows picked from three tables, summed as
    /// (word + token type) + position, then LayerNorm. `table` [rows, width]
    /// holds `words` word rows, `types` token-type rows, the position rows,
    /// then gamma and beta as one row each; `ids` [3 * tokens] holds the
    /// input ids, token type ids and position ids one after another.
    /// (Gather three times, Add twice, LayerNorm.)
    Embeddings {
        table: ValueId,
        ids: ValueId,
        words: usize,
        types: usize,
        eps: f32,
    },
    /// Fused: LayerNorm of (`x` [m, k] times `weight` [n, k] transposed, plus
    /// `bias` [n], plus `residual` [m, n]) with `gamma`, `beta` [n]: [m, n].
    /// (Linear, Add, LayerNorm: a sublayer's output, residual and norm.)
    LinearNorm {
        x: ValueId,
        weight: ValueId,
        bias: ValueId,
        residual: ValueId,
        gamma: ValueId,
        beta: ValueId,
        eps: f32,
    },
    /// Fused classification head: the first token of every sequence of `x`
    /// [batch * seq, width], times `dense_weight` [width, width] transposed
    /// plus `dense_bias`, tanh, then times `out_weight` [labels, width]
    /// transposed plus `out_bias`: logits [batch, labels]. (FirstToken,
    /// Linear, Tanh, Linear: BERT's pooler and classifier, or XLM-R's
    /// classification head.)
    Head {
        x: ValueId,
        dense_weight: ValueId,
        dense_bias: ValueId,
        out_weight: ValueId,
        out_bias: ValueId,
    },
    // Training: the loss and the backward primitives the autodiff pass emits
    // (passes/autodiff.rs). Each is the IR form of a `*_backward` function of
    // the CPU reference; `dy` is the gradient of the forward op's output.
    /// Softmax cross-entropy of `logits` [batch, labels] against `labels`
    /// [batch], the mean over real examples (`example_mask` [batch]): [1].
    CrossEntropy {
        logits: ValueId,
        labels: ValueId,
        example_mask: ValueId,
    },
    /// How far apart the representations of sentences and their
    /// translations are: `x` [2n, width] holds n English rows, then their
    /// translations in the same order; `example_mask` [2n] weighs a pair by
    /// its English row's entry (0: not a pair). `loss` says how: [1].
    Alignment {
        x: ValueId,
        example_mask: ValueId,
        loss: AlignmentLoss,
    },
    /// The gradient of [`Op::Alignment`] with respect to `x`: [2n, width].
    AlignmentBackward {
        x: ValueId,
        example_mask: ValueId,
        loss: AlignmentLoss,
    },
    /// The gradient of [`Op::CrossEntropy`] with respect to its logits:
    /// mask (softmax - one-hot) / real examples, [batch, labels].
    CrossEntropyBackward {
        logits: ValueId,
        labels: ValueId,
        example_mask: ValueId,
    },
    /// `dy` [m, n] times the MatMul's `weight` [n, k]: the gradient of its x, [m, k].
    MatMulBackwardX { dy: ValueId, weight: ValueId },
    /// `dy` [m, n] transposed times the MatMul's `x` [m, k]: the gradient of
    /// its weight, [n, k].
    MatMulBackwardWeight { dy: ValueId, x: ValueId },
    /// Column sums of `dy` [m, n]: the gradient of a bias, and of LayerNorm's beta, [n].
    ColumnSum { dy: ValueId },
    /// The GELU's gradient from its input `x`: [same as x].
    GeluBackward { x: ValueId, dy: ValueId },
    /// tanh's gradient from its output `y`: dy (1 - y²).
    TanhBackward { y: ValueId, dy: ValueId },
    /// What LayerNorm's backward reads: each row's mean and 1 / std of `x`
    /// [m, n], as [m, 2].
    LayerNormStatistics { x: ValueId, eps: f32 },
    /// LayerNorm's gradient of `x` from `dy`, `x`, the saved `statistics` and `gamma`.
    LayerNormBackwardX {
        dy: ValueId,
        x: ValueId,
        statistics: ValueId,
        gamma: ValueId,
    },
    /// LayerNorm's gradient of gamma: column sums of dy x̂, [n].
    LayerNormBackwardGamma {
        dy: ValueId,
        x: ValueId,
        statistics: ValueId,
    },
    /// The masked softmax's gradient of its scores from its output `probs`.
    MaskedSoftmaxBackward { probs: ValueId, dy: ValueId },
    /// The gradient of AttentionScores' query (`key` the other operand) or,
    /// with `of_key`, of its key (`other` then the query).
    AttentionScoresBackward {
        dy: ValueId,
        other: ValueId,
        heads: usize,
        of_key: bool,
    },
    /// The gradient of AttentionContext's probabilities, from `value`.
    AttentionContextBackwardProbs {
        dy: ValueId,
        value: ValueId,
        heads: usize,
    },
    /// The gradient of AttentionContext's value, from `probs`.
    AttentionContextBackwardValue {
        dy: ValueId,
        probs: ValueId,
        heads: usize,
    },
    /// The gradient of a Gather's table [rows, width]: the rows of `dy` summed
    /// by id, in token order (deterministic); untouched rows are zero.
    GatherBackward {
        dy: ValueId,
        ids: ValueId,
        rows: usize,
    },
    /// FirstToken's gradient: `dy` [batch, width] into row 0 of each sequence,
    /// [batch * seq, width].
    FirstTokenBackward { dy: ValueId },
    /// MeanPool's gradient: `dy` [batch, width] spread over each sequence's
    /// real tokens, [batch * seq, width].
    MeanPoolBackward { dy: ValueId, mask: ValueId },
    /// Inverted dropout of `x`: each element kept with probability 1 - `p`
    /// and scaled by 1 / (1 - p), else 0; the draw is Philox keyed by `key`
    /// (the DropoutKey input) at stream (step, micro-batch, `site`) and the
    /// element's index, so the backward regenerates the mask.
    Dropout {
        x: ValueId,
        key: ValueId,
        site: u32,
        p: f32,
    },
    /// Dropout's gradient: `dy` through the same mask and scale.
    DropoutBackward {
        dy: ValueId,
        key: ValueId,
        site: u32,
        p: f32,
    },
}

impl Op {
    /// In an Embeddings table of `rows`, the rows of positions: what is left
    /// after the word and token type rows and the gamma and beta rows.
    pub fn position_rows(rows: usize, words: usize, types: usize) -> usize {
        rows - words - types - 2
    }

    /// The dtype each operand must have, in the order of [`Op::operands`]:
    /// ids are u32, everything else f32.
    pub fn operand_dtypes(&self) -> Vec<DType> {
        let mut dtypes = vec![DType::F32; self.operands().len()];
        match self {
            Op::Gather { .. } | Op::Embeddings { .. } | Op::CrossEntropy { .. } => {
                dtypes[1] = DType::U32
            }
            Op::CrossEntropyBackward { .. }
            | Op::GatherBackward { .. }
            | Op::Dropout { .. }
            | Op::DropoutBackward { .. } => dtypes[1] = DType::U32,
            _ => {}
        }
        dtypes
    }

    /// The values this op reads, in order.
    pub fn operands(&self) -> Vec<ValueId> {
        self.clone()
            .operands_mut()
            .into_iter()
            .map(|id| *id)
            .collect()
    }

    /// The same op reading `map(operand)` in place of each operand.
    pub fn map_operands(&self, map: impl Fn(ValueId) -> ValueId) -> Op {
        let mut op = self.clone();
        for id in op.operands_mut() {
            *id = map(*id);
        }
        op
    }

    fn operands_mut(&mut self) -> Vec<&mut ValueId> {
        match self {
            Op::Gather { table: a, ids: b }
            | Op::Add { a, b }
            | Op::MatMul { x: a, weight: b }
            | Op::AddBias { x: a, bias: b }
            | Op::AttentionScores {
                query: a, key: b, ..
            }
            | Op::MaskedSoftmax { scores: a, mask: b }
            | Op::AttentionContext {
                probs: a, value: b, ..
            }
            | Op::MeanPool { x: a, mask: b }
            | Op::Alignment {
                x: a,
                example_mask: b,
                ..
            }
            | Op::AlignmentBackward {
                x: a,
                example_mask: b,
                ..
            }
            | Op::Embeddings {
                table: a, ids: b, ..
            } => vec![a, b],
            Op::Gelu { x }
            | Op::Tanh { x }
            | Op::FirstToken { x }
            | Op::L2Normalize { x }
            | Op::Softmax { x } => vec![x],
            Op::LayerNorm { x, gamma, beta, .. } => vec![x, gamma, beta],
            Op::Linear {
                x, weight, bias, ..
            } => vec![x, weight, bias],
            Op::Attention {
                query,
                key,
                value,
                mask,
                ..
            } => vec![query, key, value, mask],
            Op::LinearNorm {
                x,
                weight,
                bias,
                residual,
                gamma,
                beta,
                ..
            } => vec![x, weight, bias, residual, gamma, beta],
            Op::Head {
                x,
                dense_weight,
                dense_bias,
                out_weight,
                out_bias,
            } => vec![x, dense_weight, dense_bias, out_weight, out_bias],
            Op::CrossEntropy {
                logits,
                labels,
                example_mask,
            }
            | Op::CrossEntropyBackward {
                logits,
                labels,
                example_mask,
            } => vec![logits, labels, example_mask],
            Op::MatMulBackwardX { dy, weight: b }
            | Op::MatMulBackwardWeight { dy, x: b }
            | Op::GeluBackward { x: b, dy }
            | Op::TanhBackward { y: b, dy }
            | Op::MaskedSoftmaxBackward { probs: b, dy }
            | Op::AttentionScoresBackward { dy, other: b, .. }
            | Op::AttentionContextBackwardProbs { dy, value: b, .. }
            | Op::AttentionContextBackwardValue { dy, probs: b, .. }
            | Op::GatherBackward { dy, ids: b, .. }
            | Op::MeanPoolBackward { dy, mask: b } => vec![dy, b],
            Op::ColumnSum { dy } | Op::FirstTokenBackward { dy } => vec![dy],
            Op::Dropout { x: a, key, .. } | Op::DropoutBackward { dy: a, key, .. } => vec![a, key],
            Op::LayerNormStatistics { x, .. } => vec![x],
            Op::LayerNormBackwardX {
                dy,
                x,
                statistics,
                gamma,
            } => vec![dy, x, statistics, gamma],
            Op::LayerNormBackwardGamma { dy, x, statistics } => vec![dy, x, statistics],
        }
    }
}

/// Where a value comes from.
#[derive(Clone, Debug)]
pub enum Source {
    Input(Input),
    /// A weight, with its checkpoint tensor name as the value's name.
    Weight(Arc<[f32]>),
    /// Weights, or inputs, flattened and laid end to end in one buffer: the
    /// packed operand of a fused kernel that would otherwise bind them one
    /// by one (Q, K and V's weights; the embedding tables; the three kinds
    /// of ids).
    Concat(Vec<ValueId>),
    Op(Op),
}

impl Source {
    /// The values this one is computed from.
    pub fn operands(&self) -> Vec<ValueId> {
        match self {
            Source::Op(op) => op.operands(),
            Source::Concat(pieces) => pieces.clone(),
            Source::Input(_) | Source::Weight(_) => Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Value {
    /// The checkpoint tensor name for weights; a readable path otherwise.
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub source: Source,
}

impl Value {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug)]
pub struct Graph {
    pub batch: usize,
    pub seq: usize,
    values: Vec<Value>,
    outputs: Vec<(String, ValueId)>,
}

impl Graph {
    pub fn new(batch: usize, seq: usize) -> Self {
        Self {
            batch,
            seq,
            values: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn values(&self) -> impl Iterator<Item = (ValueId, &Value)> {
        self.values.iter().enumerate().map(|(i, v)| (ValueId(i), v))
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0]
    }

    pub fn outputs(&self) -> &[(String, ValueId)] {
        &self.outputs
    }

    pub fn output(&self, name: &str) -> Option<ValueId> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
    }

    pub fn tokens(&self) -> usize {
        self.batch * self.seq
    }

    /// For each value (by index), the index of the last value whose op reads
    /// it; its own index when nothing reads it; usize::MAX for graph outputs,
    /// which live to the end.
    pub fn last_uses(&self) -> Vec<usize> {
        let mut last: Vec<usize> = (0..self.values.len()).collect();
        for (id, value) in self.values() {
            for operand in value.source.operands() {
                last[operand.index()] = id.index();
            }
        }
        for (_, id) in self.outputs() {
            last[id.index()] = usize::MAX;
        }
        last
    }

    /// How many values are computed from each value; graph outputs count as
    /// a reader.
    pub fn readers(&self) -> Vec<usize> {
        let mut count = vec![0; self.values.len()];
        for (_, value) in self.values() {
            for operand in value.source.operands() {
                count[operand.index()] += 1;
            }
        }
        for (_, id) in self.outputs() {
            count[id.index()] += 1;
        }
        count
    }

    /// Floating-point operations of one run: a multiply-add counts two;
    /// element-wise work counts one an output element.
    pub fn flops(&self) -> u64 {
        self.values().map(|(id, _)| self.op_flops(id)).sum()
    }

    /// Floating-point operations of the op that computes `id` (a multiply-add
    /// counts two); 0 for inputs, weights and pure data movement.
    pub fn op_flops(&self, id: ValueId) -> u64 {
        let out = self.value(id);
        let Source::Op(op) = &out.source else {
            return 0;
        };
        let elements = out.elements() as u64;
        match *op {
            Op::MatMul { x, .. } | Op::Linear { x, .. } | Op::LinearNorm { x, .. } => {
                2 * elements * *self.value(x).shape.last().unwrap() as u64
            }
            Op::Head {
                dense_weight,
                out_weight,
                ..
            } => {
                let dense = self.value(dense_weight).elements() as u64;
                let out = self.value(out_weight).elements() as u64;
                2 * self.batch as u64 * (dense + out)
            }
            Op::Attention { .. } => 4 * elements * self.seq as u64,
            Op::AttentionScores { query, heads, .. } => {
                2 * elements * (self.value(query).shape[1] / heads) as u64
            }
            Op::AttentionContext { .. } => 2 * elements * self.seq as u64,
            Op::MatMulBackwardX { dy, .. } => {
                2 * elements * *self.value(dy).shape.last().unwrap() as u64
            }
            Op::MatMulBackwardWeight { dy, .. } => 2 * elements * self.value(dy).shape[0] as u64,
            Op::AttentionScoresBackward { .. } | Op::AttentionContextBackwardValue { .. } => {
                2 * elements * self.seq as u64
            }
            Op::AttentionContextBackwardProbs { dy, heads, .. } => {
                2 * elements * (self.value(dy).shape[1] / heads) as u64
            }
            Op::Gather { .. } | Op::FirstToken { .. } => 0,
            _ => elements,
        }
    }

    /// The graph's value for `input`, added on first use.
    pub fn input(&mut self, input: Input) -> ValueId {
        let existing = self
            .values()
            .find(|(_, v)| matches!(v.source, Source::Input(i) if i == input));
        if let Some((id, _)) = existing {
            return id;
        }
        let shape = input.shape(self.batch, self.seq);
        self.push(
            input.name().to_owned(),
            shape,
            input.dtype(),
            Source::Input(input),
        )
    }

    pub fn weight(&mut self, name: &str, shape: Vec<usize>, data: Arc<[f32]>) -> ValueId {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "weight {name}");
        self.push(name.to_owned(), shape, DType::F32, Source::Weight(data))
    }

    /// Adds an op; its output shape follows from its operands. A shape that
    /// does not fit is a bug in the graph builder, not bad user input (the
    /// front end checks every tensor's shape first), so it panics.
    pub fn op(&mut self, name: impl Into<String>, op: Op) -> ValueId {
        let name = name.into();
        let shape = self
            .infer_shape(&op)
            .unwrap_or_else(|why| panic!("graph builder bug at {name}: {why} ({op:?})"));
        self.push(name, shape, DType::F32, Source::Op(op))
    }

    /// Checks what every pass must keep true: each value reads only earlier
    /// values (so arena order is an execution order), each op's operands
    /// have the shapes and dtypes it takes and its value the shape it gives,
    /// concatenations hold like pieces, weight names are unique and outputs
    /// exist. Tests run it after every pass.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let fail = |id: ValueId, why: String| ValidationError {
            value: self.values[id.0].name.clone(),
            why,
        };
        let mut weight_names = std::collections::HashSet::new();
        for (id, value) in self.values() {
            for operand in value.source.operands() {
                if operand.0 >= id.0 {
                    return Err(fail(
                        id,
                        format!("reads value {} that comes after it", operand.0),
                    ));
                }
            }
            match &value.source {
                Source::Input(input) => {
                    if value.dtype != input.dtype()
                        || value.shape != input.shape(self.batch, self.seq)
                    {
                        return Err(fail(id, "input of the wrong dtype or shape".into()));
                    }
                }
                Source::Weight(data) => {
                    if data.len() != value.elements() || !weight_names.insert(&value.name) {
                        return Err(fail(
                            id,
                            "weight data and shape differ, or the name repeats".into(),
                        ));
                    }
                }
                Source::Concat(pieces) => {
                    let elements: usize = pieces.iter().map(|&p| self.value(p).elements()).sum();
                    let kinds = pieces.iter().map(|&p| {
                        let v = self.value(p);
                        (
                            matches!(v.source, Source::Weight(_)),
                            matches!(v.source, Source::Input(_)),
                            v.dtype,
                        )
                    });
                    let mut kinds = kinds.collect::<Vec<_>>();
                    kinds.dedup();
                    if elements != value.elements()
                        || kinds.len() != 1
                        || !(kinds[0].0 || kinds[0].1)
                    {
                        return Err(fail(
                            id,
                            "concat of unlike pieces or of the wrong size".into(),
                        ));
                    }
                }
                Source::Op(op) => {
                    let shape = self.infer_shape(op).map_err(|why| fail(id, why.into()))?;
                    if shape != value.shape || value.dtype != DType::F32 {
                        return Err(fail(
                            id,
                            format!(
                                "holds {:?} {:?}, the op gives {shape:?} F32",
                                value.shape, value.dtype
                            ),
                        ));
                    }
                    for (operand, dtype) in op.operands().into_iter().zip(op.operand_dtypes()) {
                        if self.value(operand).dtype != dtype {
                            return Err(fail(
                                id,
                                format!("operand {} is not {dtype:?}", self.value(operand).name),
                            ));
                        }
                    }
                }
            }
        }
        for (name, id) in self.outputs() {
            if id.0 >= self.values.len() {
                return Err(ValidationError {
                    value: name.clone(),
                    why: "output names no value".into(),
                });
            }
        }
        Ok(())
    }

    /// `pieces`, all weights or all inputs of one dtype, laid end to end
    /// as one value of `shape`.
    pub fn concat(&mut self, name: &str, pieces: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        let dtype = self.value(pieces[0]).dtype;
        let weights = matches!(self.value(pieces[0]).source, Source::Weight(_));
        let mut elements = 0;
        for &piece in &pieces {
            let value = self.value(piece);
            let same_kind = match value.source {
                Source::Weight(_) => weights,
                Source::Input(_) => !weights,
                _ => false,
            };
            assert!(
                same_kind && value.dtype == dtype,
                "graph builder bug at {name}: concat of {} with unlike pieces",
                value.name
            );
            elements += value.elements();
        }
        assert_eq!(
            elements,
            shape.iter().product::<usize>(),
            "graph builder bug at {name}: concat of {elements} elements as {shape:?}"
        );
        self.push(name.to_owned(), shape, dtype, Source::Concat(pieces))
    }

    /// Replaces the data of the weight of checkpoint name `name` (a training
    /// step's new parameters, a finite-difference probe); false when the
    /// graph has no such weight or the size differs.
    pub fn set_weight(&mut self, name: &str, data: Arc<[f32]>) -> bool {
        for value in &mut self.values {
            if let Source::Weight(old) = &mut value.source {
                if value.name == name && old.len() == data.len() {
                    *old = data;
                    return true;
                }
            }
        }
        false
    }

    pub fn mark_output(&mut self, name: &str, id: ValueId) {
        self.outputs.push((name.to_owned(), id));
    }

    /// Keeps only the outputs whose name `keep` accepts.
    pub fn retain_outputs(&mut self, keep: impl Fn(&str) -> bool) {
        self.outputs.retain(|(name, _)| keep(name));
    }

    fn push(&mut self, name: String, shape: Vec<usize>, dtype: DType, source: Source) -> ValueId {
        self.values.push(Value {
            name,
            shape,
            dtype,
            source,
        });
        ValueId(self.values.len() - 1)
    }

    fn shape(&self, id: ValueId) -> &[usize] {
        &self.values[id.0].shape
    }

    /// The shape `op`'s value has, or why its operands do not fit it.
    fn infer_shape(&self, op: &Op) -> Result<Vec<usize>, &'static str> {
        for operand in op.operands() {
            if operand.0 >= self.values.len() {
                return Err("an operand names no value");
            }
        }
        let rows_cols = |id: ValueId| match *self.shape(id) {
            [m, n] => Ok((m, n)),
            _ => Err("expected a matrix"),
        };
        Ok(match *op {
            Op::Gather { table, ids } => vec![self.value(ids).elements(), rows_cols(table)?.1],
            Op::Add { a, b } => {
                if self.shape(a) != self.shape(b) {
                    return Err("operands differ in shape");
                }
                self.shape(a).to_vec()
            }
            Op::MatMul { x, weight } | Op::Linear { x, weight, .. } => {
                let ((m, k), (n, k2)) = (rows_cols(x)?, rows_cols(weight)?);
                if k != k2 {
                    return Err("inner dimensions differ");
                }
                vec![m, n]
            }
            Op::AddBias { x, bias: v } | Op::LayerNorm { x, gamma: v, .. } => {
                if self.shape(v) != [rows_cols(x)?.1] {
                    return Err("vector does not match the last axis");
                }
                self.shape(x).to_vec()
            }
            Op::Gelu { x } | Op::Tanh { x } | Op::L2Normalize { x } | Op::Softmax { x } => {
                self.shape(x).to_vec()
            }
            Op::AttentionScores { query, heads, .. } => {
                if rows_cols(query)?.1 % heads != 0 {
                    return Err("width is not a multiple of the heads");
                }
                vec![self.batch, heads, self.seq, self.seq]
            }
            Op::MaskedSoftmax { scores, .. } => self.shape(scores).to_vec(),
            Op::AttentionContext { value, .. } => self.shape(value).to_vec(),
            Op::Attention { value, packed, .. } => {
                let (tokens, width) = rows_cols(value)?;
                if packed && width % 3 != 0 {
                    return Err("packed Q, K and V are not three equal parts");
                }
                vec![tokens, if packed { width / 3 } else { width }]
            }
            Op::FirstToken { x } | Op::MeanPool { x, .. } => vec![self.batch, rows_cols(x)?.1],
            Op::Embeddings {
                table,
                ids,
                words,
                types,
                ..
            } => {
                let (rows, width) = rows_cols(table)?;
                if rows < words + types + 2 || self.value(ids).elements() != 3 * self.tokens() {
                    return Err("table or ids do not hold what Embeddings reads");
                }
                vec![self.tokens(), width]
            }
            Op::LinearNorm {
                x,
                weight,
                residual,
                gamma,
                ..
            } => {
                let ((m, k), (n, k2)) = (rows_cols(x)?, rows_cols(weight)?);
                if k != k2 || self.shape(residual) != [m, n] || self.shape(gamma) != [n] {
                    return Err("operands do not fit one another");
                }
                vec![m, n]
            }
            Op::Head {
                x,
                dense_weight,
                out_weight,
                ..
            } => {
                let width = rows_cols(x)?.1;
                let (labels, out_in) = rows_cols(out_weight)?;
                if self.shape(dense_weight) != [width, width] || out_in != width {
                    return Err("head weights do not fit the hidden width");
                }
                vec![self.batch, labels]
            }
            Op::CrossEntropy { logits, labels, .. } => {
                if rows_cols(logits)?.0 != self.value(labels).elements() {
                    return Err("one label a row of logits");
                }
                vec![1]
            }
            Op::CrossEntropyBackward { logits, .. } => self.shape(logits).to_vec(),
            Op::Alignment {
                x, example_mask, ..
            }
            | Op::AlignmentBackward {
                x, example_mask, ..
            } => {
                let rows = rows_cols(x)?.0;
                if rows % 2 != 0 || self.value(example_mask).elements() != rows {
                    return Err("an even number of rows (sentences, then translations), one mask entry a row");
                }
                match op {
                    Op::Alignment { .. } => vec![1],
                    _ => self.shape(x).to_vec(),
                }
            }
            Op::MatMulBackwardX { dy, weight } => {
                let ((m, n), (n2, k)) = (rows_cols(dy)?, rows_cols(weight)?);
                if n != n2 {
                    return Err("dy and weight do not fit");
                }
                vec![m, k]
            }
            Op::MatMulBackwardWeight { dy, x } => {
                let ((m, n), (m2, k)) = (rows_cols(dy)?, rows_cols(x)?);
                if m != m2 {
                    return Err("dy and x do not fit");
                }
                vec![n, k]
            }
            Op::ColumnSum { dy } => vec![rows_cols(dy)?.1],
            Op::GeluBackward { x: a, dy }
            | Op::TanhBackward { y: a, dy }
            | Op::MaskedSoftmaxBackward { probs: a, dy } => {
                if self.shape(a) != self.shape(dy) {
                    return Err("operands differ in shape");
                }
                self.shape(a).to_vec()
            }
            Op::LayerNormStatistics { x, .. } => vec![rows_cols(x)?.0, 2],
            Op::LayerNormBackwardX { dy, x, .. } => {
                if self.shape(dy) != self.shape(x) {
                    return Err("dy and x differ in shape");
                }
                self.shape(x).to_vec()
            }
            Op::LayerNormBackwardGamma { x, .. } => vec![rows_cols(x)?.1],
            Op::AttentionScoresBackward { other, .. } => self.shape(other).to_vec(),
            Op::AttentionContextBackwardProbs { heads, .. } => {
                vec![self.batch, heads, self.seq, self.seq]
            }
            Op::AttentionContextBackwardValue { dy, .. } => self.shape(dy).to_vec(),
            Op::GatherBackward { dy, rows, .. } => vec![rows, rows_cols(dy)?.1],
            Op::Dropout { x: a, .. } | Op::DropoutBackward { dy: a, .. } => self.shape(a).to_vec(),
            Op::FirstTokenBackward { dy } | Op::MeanPoolBackward { dy, .. } => {
                vec![self.tokens(), rows_cols(dy)?.1]
            }
        })
    }
}

/// A broken invariant of a graph: a compiler bug, named by the value.
#[derive(Debug, thiserror::Error)]
#[error("graph invariant broken at {value}: {why}")]
pub struct ValidationError {
    pub value: String,
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_from_operands_and_inputs_are_shared() {
        let mut g = Graph::new(2, 5);
        let ids = g.input(Input::InputIds);
        assert_eq!(g.input(Input::InputIds), ids);
        let table = g.weight("table", vec![7, 4], vec![0.0; 28].into());
        let x = g.op("x", Op::Gather { table, ids });
        assert_eq!(g.value(x).shape, vec![10, 4]);
        let weight = g.weight("w", vec![3, 4], vec![0.0; 12].into());
        let y = g.op("y", Op::MatMul { x, weight });
        assert_eq!(g.value(y).shape, vec![10, 3]);
        let scores = g.op(
            "s",
            Op::AttentionScores {
                query: x,
                key: x,
                heads: 2,
            },
        );
        assert_eq!(g.value(scores).shape, vec![2, 2, 5, 5]);
        let pooled = g.op("p", Op::FirstToken { x });
        assert_eq!(g.value(pooled).shape, vec![2, 4]);
        assert_eq!(g.value(y).dtype, DType::F32);
        assert_eq!(g.value(ids).dtype, DType::U32);
    }

    #[test]
    fn flops_count_multiply_adds_twice() {
        let mut g = Graph::new(1, 1);
        let x = g.weight("x", vec![3, 5], vec![0.0; 15].into());
        let weight = g.weight("w", vec![7, 5], vec![0.0; 35].into());
        let y = g.op("y", Op::MatMul { x, weight });
        g.op("z", Op::Tanh { x: y });
        assert_eq!(g.flops(), 2 * 3 * 7 * 5 + 3 * 7);
        // Each backward GEMM does the forward's multiply-adds again.
        let before = g.flops();
        g.op("dx", Op::MatMulBackwardX { dy: y, weight });
        g.op("dw", Op::MatMulBackwardWeight { dy: y, x });
        assert_eq!(g.flops() - before, 2 * (2 * 3 * 7 * 5));
    }

    #[test]
    fn validate_names_the_value_that_breaks_an_invariant() {
        let mut g = Graph::new(1, 2);
        let x = g.weight("x", vec![2, 3], vec![0.0; 6].into());
        let w = g.weight("w", vec![4, 3], vec![0.0; 12].into());
        let y = g.op("y", Op::MatMul { x, weight: w });
        g.mark_output("y", y);
        g.validate().unwrap();
        // A pass that wrote the wrong shape.
        g.values[y.0].shape = vec![2, 5];
        let err = g.validate().unwrap_err();
        assert_eq!(err.value, "y");
        assert!(err.why.contains("the op gives [2, 4]"), "{err}");
        g.values[y.0].shape = vec![2, 4];
        // A pass that read a value defined later.
        g.values[y.0].source = Source::Op(Op::Tanh { x: ValueId(3) });
        g.push(
            "late".into(),
            vec![2, 4],
            DType::F32,
            Source::Weight(vec![0.0; 8].into()),
        );
        assert!(g.validate().unwrap_err().why.contains("comes after it"));
        // Ids must be u32.
        let mut g = Graph::new(1, 2);
        let table = g.weight("t", vec![5, 3], vec![0.0; 15].into());
        let fake_ids = g.weight("ids", vec![2], vec![0.0; 2].into());
        g.push(
            "rows".into(),
            vec![2, 3],
            DType::F32,
            Source::Op(Op::Gather {
                table,
                ids: fake_ids,
            }),
        );
        assert!(g.validate().unwrap_err().why.contains("is not U32"));
    }

    #[test]
    #[should_panic(expected = "inner dimensions differ")]
    fn a_shape_mismatch_is_a_builder_bug() {
        let mut g = Graph::new(1, 2);
        let x = g.weight("x", vec![2, 3], vec![0.0; 6].into());
        let weight = g.weight("w", vec![3, 4], vec![0.0; 12].into());
        g.op("y", Op::MatMul { x, weight });
    }
}
