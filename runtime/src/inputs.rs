//! A batch of tokenized sequences padded to one length: the four inputs every
//! encoder graph takes, laid out row-major as [batch, seq]; and what a
//! training graph reads besides them.

use serde::{Deserialize, Serialize};

use crate::tokenizer::Encoding;

/// How position ids are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PositionScheme {
    /// BERT: 0, 1, 2, ... for every slot, padding included.
    FromZero,
    /// RoBERTa / XLM-R: real tokens count up from `padding_idx + 1`; padding
    /// slots get `padding_idx` itself (as Hugging Face's
    /// `create_position_ids_from_input_ids` does).
    AfterPadding { padding_idx: u32 },
}

impl PositionScheme {
    /// How many position embeddings a model needs for `tokens` positions.
    pub fn positions_needed(self, tokens: usize) -> usize {
        match self {
            PositionScheme::FromZero => tokens,
            PositionScheme::AfterPadding { padding_idx } => tokens + padding_idx as usize + 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelInputs {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub position_ids: Vec<u32>,
    /// 1.0 for a real token, 0.0 for padding.
    pub attention_mask: Vec<f32>,
}

impl ModelInputs {
    /// The ids input of program name `name` ("input_ids", "token_type_ids",
    /// "position_ids"); None for any other name.
    pub fn ids(&self, name: &str) -> Option<&[u32]> {
        match name {
            "input_ids" => Some(&self.input_ids),
            "token_type_ids" => Some(&self.token_type_ids),
            "position_ids" => Some(&self.position_ids),
            _ => None,
        }
    }

    /// Pads every encoding to `seq` tokens (at least the longest one).
    pub fn pad(encodings: &[Encoding], seq: usize, pad_id: u32, positions: PositionScheme) -> Self {
        let longest = encodings.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let seq = seq.max(longest);
        let batch = encodings.len();
        let mut inputs = ModelInputs {
            batch,
            seq,
            input_ids: vec![pad_id; batch * seq],
            token_type_ids: vec![0; batch * seq],
            position_ids: vec![0; batch * seq],
            attention_mask: vec![0.0; batch * seq],
        };
        for (row, encoding) in encodings.iter().enumerate() {
            let slots = row * seq..(row + 1) * seq;
            let len = encoding.ids.len();
            inputs.input_ids[slots.start..slots.start + len].copy_from_slice(&encoding.ids);
            inputs.token_type_ids[slots.start..slots.start + len]
                .copy_from_slice(&encoding.type_ids);
            inputs.attention_mask[slots.start..slots.start + len].fill(1.0);
            for (slot, position) in inputs.position_ids[slots].iter_mut().enumerate() {
                *position = position_id(positions, slot, slot < len);
            }
        }
        inputs
    }

    /// Pads to a compiled bucket of `batch` rows of `seq` tokens. Rows past the
    /// encodings hold one padding-id token each (attended, so that no row is
    /// all padding); their outputs are thrown away.
    pub fn pad_to_bucket(
        encodings: &[Encoding],
        batch: usize,
        seq: usize,
        pad_id: u32,
        positions: PositionScheme,
    ) -> Self {
        let filler = Encoding {
            ids: vec![pad_id],
            type_ids: vec![0],
        };
        let mut rows = encodings.to_vec();
        rows.resize(batch.max(encodings.len()), filler);
        Self::pad(&rows, seq, pad_id, positions)
    }

    /// The number of real (unpadded) tokens in each row.
    pub fn lengths(&self) -> Vec<usize> {
        self.attention_mask
            .chunks(self.seq.max(1))
            .map(|row| row.iter().filter(|&&m| m > 0.0).count())
            .collect()
    }
}

/// What a training graph reads besides the model inputs; the graph's input
/// names are the field names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingInputs {
    /// The gold label of each sequence.
    pub labels: Vec<u32>,
    /// 1.0 for a real example, 0.0 for a row that only pads the batch.
    pub example_mask: Vec<f32>,
    /// Added to the gathered word embeddings ([tokens, hidden]).
    pub word_embedding_delta: Vec<f32>,
    /// Dropout's key: [seed low, seed high, optimizer step, micro-batch].
    pub dropout_key: Vec<u32>,
}

/// The suffix of a derived input: `input_ids.order` is the permutation
/// that sorts `input_ids` ([`id_order`]), which the gradient of a gather
/// reads to sum each id's rows in one pass.
pub const ORDER_SUFFIX: &str = ".order";

/// The token indices sorted by id, tokens of one id in token order (a
/// stable sort): each id's tokens are one run of the permutation.
pub fn id_order(ids: &[u32]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&t| ids[t as usize]);
    order
}

/// The data of the input named `name`, model or training, as bytes; None
/// for a name no graph input has (derived inputs, `*.order`, included).
pub fn input_bytes<'a>(
    name: &str,
    inputs: &'a ModelInputs,
    training: &'a TrainingInputs,
) -> Option<&'a [u8]> {
    Some(match name {
        "attention_mask" => bytemuck::cast_slice(&inputs.attention_mask),
        "labels" => bytemuck::cast_slice(&training.labels),
        "example_mask" => bytemuck::cast_slice(&training.example_mask),
        "word_embedding_delta" => bytemuck::cast_slice(&training.word_embedding_delta),
        "dropout_key" => bytemuck::cast_slice(&training.dropout_key),
        ids => bytemuck::cast_slice(inputs.ids(ids)?),
    })
}

fn position_id(scheme: PositionScheme, slot: usize, is_token: bool) -> u32 {
    match scheme {
        PositionScheme::FromZero => slot as u32,
        PositionScheme::AfterPadding { padding_idx } if is_token => padding_idx + 1 + slot as u32,
        PositionScheme::AfterPadding { padding_idx } => padding_idx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[u32]) -> Encoding {
        Encoding {
            ids: ids.to_vec(),
            type_ids: vec![0; ids.len()],
        }
    }

    #[test]
    fn id_order_sorts_stably() {
        assert_eq!(id_order(&[7, 3, 7, 1, 3]), vec![3, 1, 4, 0, 2]);
        assert_eq!(id_order(&[]), Vec::<u32>::new());
    }

    #[test]
    fn pads_to_the_longest_row_with_bert_positions() {
        let inputs = ModelInputs::pad(
            &[enc(&[5, 6, 7]), enc(&[8])],
            0,
            0,
            PositionScheme::FromZero,
        );
        assert_eq!((inputs.batch, inputs.seq), (2, 3));
        assert_eq!(inputs.input_ids, vec![5, 6, 7, 8, 0, 0]);
        assert_eq!(inputs.position_ids, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(inputs.attention_mask, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(inputs.lengths(), vec![3, 1]);
    }

    #[test]
    fn bucket_padding_fills_missing_rows_with_one_token() {
        let inputs = ModelInputs::pad_to_bucket(&[enc(&[5, 6])], 3, 4, 0, PositionScheme::FromZero);
        assert_eq!((inputs.batch, inputs.seq), (3, 4));
        assert_eq!(inputs.lengths(), vec![2, 1, 1]);
    }

    #[test]
    fn roberta_positions_start_after_padding_idx() {
        let scheme = PositionScheme::AfterPadding { padding_idx: 1 };
        let inputs = ModelInputs::pad(&[enc(&[0, 9, 2]), enc(&[0, 2])], 4, 1, scheme);
        assert_eq!(inputs.input_ids, vec![0, 9, 2, 1, 0, 2, 1, 1]);
        assert_eq!(inputs.position_ids, vec![2, 3, 4, 1, 2, 3, 1, 1]);
        assert_eq!(scheme.positions_needed(512), 514);
    }
}
