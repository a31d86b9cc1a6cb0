//! config.json, read into the few numbers the encoder graph needs, with the
//! architecture decided and every unsupported option refused by name.

use std::path::Path;

use serde_json::Value as Json;

use super::FrontendError;

/// The encoder family: the two differ in tensor prefix, position numbering and
/// classification head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Bert,
    Roberta,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub family: Family,
    /// As config.json names it, e.g. "XLMRobertaForSequenceClassification".
    pub architecture: String,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f32,
    pub pad_token_id: u32,
    /// Label names in id order; empty for an encoder without a head.
    pub labels: Vec<String>,
    /// Dropout probabilities in training: on hidden states (embeddings,
    /// sublayer outputs), on attention probabilities, and before the
    /// classifier (`classifier_dropout`, else the hidden one).
    pub hidden_dropout: f32,
    pub attention_dropout: f32,
    pub classifier_dropout: f32,
}

impl ModelConfig {
    pub fn has_classifier(&self) -> bool {
        !self.labels.is_empty()
    }

    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Parses config.json text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, FrontendError> {
        let json: Json = serde_json::from_str(text).map_err(|source| FrontendError::Json {
            path: path.to_owned(),
            source,
        })?;
        ConfigReader { path, json: &json }.read()
    }
}

struct ConfigReader<'a> {
    path: &'a Path,
    json: &'a Json,
}

impl ConfigReader<'_> {
    fn error(&self, message: String) -> FrontendError {
        FrontendError::Config {
            path: self.path.to_owned(),
            message,
        }
    }

    fn unsupported(&self, what: String) -> FrontendError {
        FrontendError::UnsupportedArchitecture {
            path: self.path.to_owned(),
            what,
        }
    }

    fn count(&self, field: &str) -> Result<usize, FrontendError> {
        match self.json.get(field) {
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    self.error(format!(
                        "field {field} must be a positive integer, found {v}"
                    ))
                }),
            None => Err(self.error(format!("field {field} is missing"))),
        }
    }

    fn string_or(&self, field: &str, default: &str) -> Result<String, FrontendError> {
        match self.json.get(field) {
            None | Some(Json::Null) => Ok(default.to_owned()),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.error(format!("field {field} must be a string, found {v}"))),
        }
    }

    fn read(&self) -> Result<ModelConfig, FrontendError> {
        let family = self.family()?;
        let architecture = self.architecture(family)?;
        let classifier = architecture.ends_with("ForSequenceClassification");
        let hidden = self.count("hidden_size")?;
        let heads = self.count("num_attention_heads")?;
        if hidden % heads != 0 {
            return Err(self.error(format!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
            )));
        }
        self.require_value("hidden_act", "gelu", "the exact (erf) GELU")?;
        self.require_value("position_embedding_type", "absolute", "absolute positions")?;
        let eps =
            match self.json.get("layer_norm_eps") {
                Some(v) => v.as_f64().filter(|&e| e > 0.0).ok_or_else(|| {
                    self.error(format!("layer_norm_eps must be positive, found {v}"))
                })? as f32,
                None => return Err(self.error("field layer_norm_eps is missing".into())),
            };
        let probability = |field: &str, default: f32| -> Result<f32, FrontendError> {
            match self.json.get(field) {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_f64()
                    .filter(|p| (0.0..1.0).contains(p))
                    .map(|p| p as f32)
                    .ok_or_else(|| self.error(format!("{field} must be in [0, 1), found {v}"))),
            }
        };
        let hidden_dropout = probability("hidden_dropout_prob", 0.1)?;
        Ok(ModelConfig {
            hidden_dropout,
            attention_dropout: probability("attention_probs_dropout_prob", 0.1)?,
            classifier_dropout: probability("classifier_dropout", hidden_dropout)?,
            family,
            hidden,
            heads,
            layers: self.count("num_hidden_layers")?,
            intermediate: self.count("intermediate_size")?,
            vocab: self.count("vocab_size")?,
            max_positions: self.count("max_position_embeddings")?,
            type_vocab: self.count("type_vocab_size")?,
            layer_norm_eps: eps,
            pad_token_id: self.pad_token_id()?,
            labels: if classifier {
                self.labels()?
            } else {
                Vec::new()
            },
            architecture,
        })
    }

    fn family(&self) -> Result<Family, FrontendError> {
        let model_type = self.string_or("model_type", "")?;
        match model_type.as_str() {
            "bert" => Ok(Family::Bert),
            "xlm-roberta" | "roberta" => Ok(Family::Roberta),
            "" => Err(self.error("field model_type is missing".into())),
            other => Err(self.unsupported(format!("model_type \"{other}\""))),
        }
    }

    /// The first entry of `architectures`; a bare encoder when absent.
    fn architecture(&self, family: Family) -> Result<String, FrontendError> {
        let bare = match family {
            Family::Bert => "BertModel",
            Family::Roberta => "XLMRobertaModel",
        };
        let Some(list) = self.json.get("architectures").and_then(Json::as_array) else {
            return Ok(bare.to_owned());
        };
        let Some(name) = list.first().and_then(Json::as_str) else {
            return Ok(bare.to_owned());
        };
        let supported = [
            "Model",
            "ForSequenceClassification",
            "ForMaskedLM",
            "ForPreTraining",
        ];
        if supported.iter().any(|s| name.ends_with(s)) {
            Ok(name.to_owned())
        } else {
            Err(self.unsupported(format!("\"{name}\"")))
        }
    }

    fn require_value(&self, field: &str, wanted: &str, meaning: &str) -> Result<(), FrontendError> {
        let found = self.string_or(field, wanted)?;
        if found == wanted {
            Ok(())
        } else {
            Err(self.unsupported(format!(
                "{field} \"{found}\" (only \"{wanted}\", {meaning}, is supported)"
            )))
        }
    }

    fn pad_token_id(&self) -> Result<u32, FrontendError> {
        match self.json.get("pad_token_id") {
            None | Some(Json::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .map(|n| n as u32)
                .ok_or_else(|| self.error(format!("pad_token_id must be an integer, found {v}"))),
        }
    }

    /// Label names from id2label, in id order; LABEL_i when only num_labels
    /// is given; LABEL_0 and LABEL_1 when neither is, as transformers reads it.
    fn labels(&self) -> Result<Vec<String>, FrontendError> {
        if let Some(map) = self.json.get("id2label").and_then(Json::as_object) {
            let mut labels = vec![None; map.len()];
            for (key, name) in map {
                let id = key.parse::<usize>().ok().filter(|&i| i < map.len());
                let slot = id.ok_or_else(|| {
                    self.error(format!(
                        "id2label key \"{key}\" is not an id below {}",
                        map.len()
                    ))
                })?;
                let name = name
                    .as_str()
                    .ok_or_else(|| self.error(format!("id2label[\"{key}\"] must be a string")))?;
                labels[slot] = Some(name.to_owned());
            }
            return Ok(labels.into_iter().flatten().collect());
        }
        // Neither: transformers' default of two labels, which its recent
        // versions leave out of config.json.
        let n = match self.json.get("num_labels") {
            None => 2,
            Some(_) => self.count("num_labels")?,
        };
        Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
    }
}
