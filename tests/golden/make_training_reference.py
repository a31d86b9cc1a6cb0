#!/usr/bin/env python3
"""Produce the training references xltc's autodiff and optimizer are checked against.

For the tiny BERT and XLM-R classifiers (tests/fixtures/models) and a fixed
batch of six multilingual sentence pairs, transformers' own model classes in
float64, eval mode (dropout off) compute:

  - the loss (softmax cross-entropy, the mean over the batch) with a small
    random perturbation added to the output of the word-embedding layer (a
    forward hook, so position ids still come from the input ids);
  - the gradient of every parameter, and of that perturbation (the gradient
    with respect to the word embeddings);
  - the public recipe's optimizer for 3 steps on the same six pairs, as two
    micro-batches of three (gradient accumulation 2, each micro-batch loss
    divided by 2), clipping at global norm 1.0, AdamW (betas 0.9 / 0.999,
    eps 1e-8, weight decay 0.01 on all but biases and LayerNorm weights, so
    that the decay path is tested), learning rate 1e-3 decaying linearly to 0
    over 10 steps with no warm-up; the loss of each step and every parameter
    after the third.

Writes tests/fixtures/training/<model>.safetensors (float64; the texts and
settings in the metadata). CI only reads them.

    pip install torch transformers safetensors numpy
    python3 tests/golden/make_training_reference.py
"""
import json
import os

import numpy as np
import torch
from safetensors.numpy import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
PAIR_LANGS = ["en", "de", "tr", "el", "ur", "ja"]
LR, STEPS, TOTAL_STEPS, ACCUMULATION, CLIP, WEIGHT_DECAY = 1e-3, 3, 10, 2, 1.0, 0.01
DELTA_SCALE, SEED = 0.01, 7


def pairs():
    with open(os.path.join(FIXTURES, "multilingual.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]
    chosen = []
    for lang in PAIR_LANGS:
        chosen.append(next(r for r in rows if r[0] == lang))
    return [(r[1], r[2]) for r in chosen]


def encode(folder, texts):
    tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    encodings = [tokenizer.encode(a, b) for a, b in texts]
    seq = max(len(e.ids) for e in encodings)
    pad = json.load(open(os.path.join(folder, "config.json"))).get("pad_token_id", 0)
    ids = np.full((len(texts), seq), pad, dtype=np.int64)
    types = np.zeros((len(texts), seq), dtype=np.int64)
    mask = np.zeros((len(texts), seq), dtype=np.int64)
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = e.ids
        types[i, : len(e.ids)] = e.type_ids
        mask[i, : len(e.ids)] = 1
    return ids, types, mask


def word_embedding_layer(model):
    return model.base_model.embeddings.word_embeddings


def loss_and_gradients(model, ids, types, mask, labels, delta):
    delta = torch.tensor(delta, requires_grad=True)
    hook = word_embedding_layer(model).register_forward_hook(lambda _m, _i, out: out + delta)
    model.zero_grad()
    out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(types),
                attention_mask=torch.tensor(mask), labels=torch.tensor(labels))
    out.loss.backward()
    hook.remove()
    grads = {f"grad.{n}": p.grad.detach().numpy().copy() for n, p in model.named_parameters()}
    grads["grad.word_embeddings"] = delta.grad.numpy().reshape(-1, delta.shape[-1]).copy()
    return out.loss.item(), grads


def no_decay(name):
    return name.endswith(".bias") or "LayerNorm.weight" in name


def train(model, ids, types, mask, labels):
    decay = [p for n, p in model.named_parameters() if not no_decay(n)]
    plain = [p for n, p in model.named_parameters() if no_decay(n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": plain, "weight_decay": 0.0}],
        lr=LR, betas=(0.9, 0.999), eps=1e-8)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, (TOTAL_STEPS - step) / TOTAL_STEPS))
    losses, norms = [], []
    half = len(labels) // ACCUMULATION
    for _ in range(STEPS):
        optimizer.zero_grad()
        total = 0.0
        for k in range(ACCUMULATION):
            part = slice(k * half, (k + 1) * half)
            out = model(input_ids=torch.tensor(ids[part]), token_type_ids=torch.tensor(types[part]),
                        attention_mask=torch.tensor(mask[part]),
                        labels=torch.tensor(labels[part]))
            (out.loss / ACCUMULATION).backward()
            total += out.loss.item() / ACCUMULATION
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP).item())
        optimizer.step()
        schedule.step()
        losses.append(total)
    return losses, norms


def main():
    torch.manual_seed(SEED)
    texts = pairs()
    for name in ["tiny-bert", "tiny-xlmr"]:
        folder = os.path.join(FIXTURES, "models", name)
        model = AutoModelForSequenceClassification.from_pretrained(folder).double().eval()
        ids, types, mask = encode(folder, texts)
        labels = np.arange(len(texts), dtype=np.int64) % model.config.num_labels
        hidden = model.config.hidden_size
        rng = np.random.default_rng(SEED)
        delta = (DELTA_SCALE * rng.uniform(-1, 1, size=(*ids.shape, hidden))).astype(np.float32)
        loss, grads = loss_and_gradients(model, ids, types, mask, labels, delta.astype(np.float64))
        losses, norms = train(model, ids, types, mask, labels)
        tensors = {
            "input_ids": ids.astype(np.int64), "token_type_ids": types.astype(np.int64),
            "attention_mask": mask.astype(np.int64), "labels": labels,
            "word_embedding_delta": delta.reshape(-1, hidden),
            "loss": np.array([loss]), "step_losses": np.array(losses),
            "step_gradient_norms": np.array(norms), **grads,
        }
        for n, p in model.named_parameters():
            tensors[f"after.{n}"] = p.detach().numpy().copy()
        settings = dict(lr=LR, steps=STEPS, total_steps=TOTAL_STEPS, accumulation=ACCUMULATION,
                        clip=CLIP, weight_decay=WEIGHT_DECAY, betas=[0.9, 0.999], eps=1e-8,
                        warmup=0, no_decay="biases and LayerNorm weights",
                        torch=torch.__version__)
        out = os.path.join(FIXTURES, "training", f"{name}.safetensors")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        save_file(tensors, out, metadata={"texts": json.dumps(texts, ensure_ascii=False),
                                          "settings": json.dumps(settings)})
        print(f"{out}: loss {loss:.6f}, steps {losses}, gradient norms {norms}")


if __name__ == "__main__":
    main()
