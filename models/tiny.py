#!/usr/bin/env python3
"""Make the tiny random models the tests use, with Hugging Face transformers.

Two models with sequence-classification heads, deliberately odd-sized (hidden
36 with 3 heads of 12, intermediate sizes that are not multiples of anything
useful) so that shape bugs show:

    tiny-bert   BertForSequenceClassification, 2 layers, 3 labels, WordPiece
    tiny-xlmr   XLMRobertaForSequenceClassification, 3 layers, 2 labels, Unigram

Every parameter, LayerNorm weights and biases included, is drawn at random
(default init leaves LayerNorm at 1 and 0, which would hide a swapped gamma and
beta). Tokenizers are trained on the committed multilingual test set. Output:
tests/fixtures/models/<name>/{config.json, tokenizer.json, model.safetensors}.
Needs torch, transformers and tokenizers; CI does not run this, it reads the
committed files.

    python3 models/tiny.py
"""
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (BertConfig, BertForSequenceClassification, XLMRobertaConfig,
                          XLMRobertaForSequenceClassification)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")
TEST_SET = os.path.join(ROOT, "tests", "fixtures", "multilingual.tsv")
SEED = 7


def sentences():
    with open(TEST_SET, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]
    return [s for row in rows for s in row[1:]]


def wordpiece_tokenizer(corpus):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    return tok


def unigram_tokenizer(corpus):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(corpus, trainers.UnigramTrainer(
        vocab_size=400, special_tokens=specials, unk_token="<unk>"))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.decoder = decoders.Metaspace()
    return tok


def randomize(model):
    """Every parameter at random; LayerNorm weights around 1 so activations stay sane."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))


def save(model, tok, name):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    print(f"tiny: wrote {folder}", file=sys.stderr)


def tiny_bert(corpus):
    tok = wordpiece_tokenizer(corpus)
    labels = ["entailment", "neutral", "contradiction"]
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=36, num_hidden_layers=2,
        num_attention_heads=3, intermediate_size=37, max_position_embeddings=128,
        type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu",
        pad_token_id=tok.token_to_id("[PAD]"),
        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        architectures=["BertForSequenceClassification"])
    model = BertForSequenceClassification(config)
    randomize(model)
    save(model, tok, "tiny-bert")


def tiny_xlmr(corpus):
    tok = unigram_tokenizer(corpus)
    labels = ["different", "paraphrase"]
    config = XLMRobertaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=36, num_hidden_layers=3,
        num_attention_heads=3, intermediate_size=50, max_position_embeddings=130,
        type_vocab_size=1, layer_norm_eps=1e-5, hidden_act="gelu",
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        architectures=["XLMRobertaForSequenceClassification"])
    model = XLMRobertaForSequenceClassification(config)
    randomize(model)
    save(model, tok, "tiny-xlmr")


def main():
    torch.manual_seed(SEED)
    corpus = sentences()
    tiny_bert(corpus)
    tiny_xlmr(corpus)


if __name__ == "__main__":
    main()
