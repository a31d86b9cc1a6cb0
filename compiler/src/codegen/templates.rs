//! The WGSL kernel templates of shaders/, and their specialisation: every
//! `{{NAME}}` in a template is replaced by a named constant (a shape, a tile
//! size, a mode).

/// A kernel family: one template file in shaders/.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Template {
    Gather,
    Binary,
    Activation,
    ActivationBackward,
    ColumnSum,
    Matmul,
    MatmulLanes,
    MatmulLanesSubgroup,
    LayerNorm,
    LayerNormSaving,
    AttentionScores,
    MaskedSoftmax,
    AttentionContext,
    FirstToken,
    MeanPool,
    RowNormalize,
    Attention,
    Embeddings,
    LinearNorm,
    Head,
    LayerNormStatistics,
    LayerNormBackward,
    LayerNormGammaBackward,
    MaskedSoftmaxBackward,
    AttentionBackward,
    AttentionSums,
    AttentionDots,
    PoolingBackward,
    CrossEntropy,
    Alignment,
    Contrastive,
    SymmetricKl,
    Dropout,
    GatherBackward,
    Fill,
    Accumulate,
    SquareSum,
    Clip,
    AdamW,
}

impl Template {
    pub fn name(self) -> &'static str {
        match self {
            Template::Gather => "gather",
            Template::Binary => "binary",
            Template::Activation => "activation",
            Template::ActivationBackward => "activation_backward",
            Template::ColumnSum => "column_sum",
            Template::Matmul => "matmul",
            Template::MatmulLanes => "matmul_lanes",
            Template::MatmulLanesSubgroup => "matmul_lanes_subgroup",
            Template::LayerNorm => "layer_norm",
            Template::LayerNormSaving => "layer_norm_saving",
            Template::AttentionScores => "attention_scores",
            Template::MaskedSoftmax => "masked_softmax",
            Template::AttentionContext => "attention_context",
            Template::FirstToken => "first_token",
            Template::MeanPool => "mean_pool",
            Template::RowNormalize => "row_normalize",
            Template::Attention => "attention",
            Template::Embeddings => "embeddings",
            Template::LinearNorm => "linear_norm",
            Template::Head => "head",
            Template::LayerNormStatistics => "layer_norm_statistics",
            Template::LayerNormBackward => "layer_norm_backward",
            Template::LayerNormGammaBackward => "layer_norm_gamma_backward",
            Template::MaskedSoftmaxBackward => "masked_softmax_backward",
            Template::AttentionBackward => "attention_backward",
            Template::AttentionSums => "attention_sums",
            Template::AttentionDots => "attention_dots",
            Template::PoolingBackward => "pooling_backward",
            Template::CrossEntropy => "cross_entropy",
            Template::Alignment => "alignment",
            Template::Contrastive => "contrastive",
            Template::SymmetricKl => "symmetric_kl",
            Template::Dropout => "dropout",
            Template::GatherBackward => "gather_backward",
            Template::Fill => "fill",
            Template::Accumulate => "accumulate",
            Template::SquareSum => "square_sum",
            Template::Clip => "clip",
            Template::AdamW => "adamw",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Template::Gather => concat!(
                include_str!("../../../shaders/gather.wgsl"),
                include_str!("../../../shaders/table_parts.wgsl")
            ),
            Template::Binary => include_str!("../../../shaders/binary.wgsl"),
            Template::Activation => concat!(
                include_str!("../../../shaders/activation.wgsl"),
                include_str!("../../../shaders/gelu.wgsl"),
                include_str!("../../../shaders/tanh.wgsl")
            ),
            Template::ActivationBackward => concat!(
                include_str!("../../../shaders/activation_backward.wgsl"),
                include_str!("../../../shaders/gelu.wgsl")
            ),
            Template::ColumnSum => include_str!("../../../shaders/column_sum.wgsl"),
            Template::Matmul => concat!(
                include_str!("../../../shaders/matmul.wgsl"),
                include_str!("../../../shaders/gelu.wgsl")
            ),
            Template::MatmulLanes => concat!(
                include_str!("../../../shaders/matmul_lanes.wgsl"),
                include_str!("../../../shaders/matmul_lanes_loads.wgsl"),
                include_str!("../../../shaders/gelu.wgsl")
            ),
            Template::MatmulLanesSubgroup => concat!(
                include_str!("../../../shaders/matmul_lanes.wgsl"),
                include_str!("../../../shaders/matmul_lanes_subgroup.wgsl"),
                include_str!("../../../shaders/gelu.wgsl")
            ),
            Template::LayerNorm => concat!(
                include_str!("../../../shaders/layer_norm.wgsl"),
                include_str!("../../../shaders/layer_norm_discard.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::LayerNormSaving => concat!(
                include_str!("../../../shaders/layer_norm.wgsl"),
                include_str!("../../../shaders/layer_norm_save.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::AttentionScores => include_str!("../../../shaders/attention_scores.wgsl"),
            Template::MaskedSoftmax => include_str!("../../../shaders/masked_softmax.wgsl"),
            Template::AttentionContext => include_str!("../../../shaders/attention_context.wgsl"),
            Template::FirstToken => include_str!("../../../shaders/first_token.wgsl"),
            Template::MeanPool => include_str!("../../../shaders/mean_pool.wgsl"),
            Template::RowNormalize => include_str!("../../../shaders/row_normalize.wgsl"),
            Template::Attention => concat!(
                include_str!("../../../shaders/attention.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::Embeddings => concat!(
                include_str!("../../../shaders/embeddings.wgsl"),
                include_str!("../../../shaders/table_parts.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::LinearNorm => concat!(
                include_str!("../../../shaders/linear_norm.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::Head => concat!(
                include_str!("../../../shaders/head.wgsl"),
                include_str!("../../../shaders/tanh.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::LayerNormStatistics => concat!(
                include_str!("../../../shaders/layer_norm_statistics.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::LayerNormBackward => concat!(
                include_str!("../../../shaders/layer_norm_backward.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::LayerNormGammaBackward => {
                include_str!("../../../shaders/layer_norm_gamma_backward.wgsl")
            }
            Template::MaskedSoftmaxBackward => {
                include_str!("../../../shaders/masked_softmax_backward.wgsl")
            }
            Template::AttentionBackward => include_str!("../../../shaders/attention_backward.wgsl"),
            Template::AttentionSums => include_str!("../../../shaders/attention_sums.wgsl"),
            Template::AttentionDots => include_str!("../../../shaders/attention_dots.wgsl"),
            Template::PoolingBackward => include_str!("../../../shaders/pooling_backward.wgsl"),
            Template::CrossEntropy => include_str!("../../../shaders/cross_entropy.wgsl"),
            Template::Alignment => concat!(
                include_str!("../../../shaders/alignment.wgsl"),
                include_str!("../../../shaders/pair_loss_main.wgsl")
            ),
            Template::Contrastive => include_str!("../../../shaders/contrastive.wgsl"),
            Template::SymmetricKl => concat!(
                include_str!("../../../shaders/symmetric_kl.wgsl"),
                include_str!("../../../shaders/pair_loss_main.wgsl")
            ),
            Template::Dropout => include_str!("../../../shaders/dropout.wgsl"),
            Template::GatherBackward => include_str!("../../../shaders/gather_backward.wgsl"),
            Template::Fill => include_str!("../../../shaders/fill.wgsl"),
            Template::Accumulate => include_str!("../../../shaders/accumulate.wgsl"),
            Template::SquareSum => concat!(
                include_str!("../../../shaders/square_sum.wgsl"),
                include_str!("../../../shaders/workgroup_reduce.wgsl")
            ),
            Template::Clip => include_str!("../../../shaders/clip.wgsl"),
            Template::AdamW => include_str!("../../../shaders/adamw.wgsl"),
        }
    }

    /// The fewest lanes a subgroup of the adapter must have for the kernel
    /// to be right; 0 for kernels that use no subgroup operation.
    pub fn min_subgroup_size(self) -> u32 {
        match self {
            Template::MatmulLanesSubgroup => 8,
            _ => 0,
        }
    }

    /// The template with every placeholder replaced; a placeholder without a
    /// constant, or a constant without a placeholder, is a codegen bug.
    pub fn specialise(self, constants: &[(&str, String)]) -> String {
        let mut wgsl = self.source().to_owned();
        for (name, value) in constants {
            let placeholder = format!("{{{{{name}}}}}");
            assert!(
                wgsl.contains(&placeholder),
                "{}: no placeholder {name}",
                self.name()
            );
            wgsl = wgsl.replace(&placeholder, value);
        }
        assert!(
            !wgsl.contains("{{"),
            "{}: a placeholder is left unset",
            self.name()
        );
        wgsl
    }
}
