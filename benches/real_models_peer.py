#!/usr/bin/env python3
"""The PyTorch peer of benches/real_models.rs: runs a Hugging Face model
folder (transformers' AutoModel, float32, CPU) on the token and type ids the
benchmark sends, batch by batch as it padded them, mean-pools the last hidden states
over real tokens (L2-normalised when asked), and prints the seconds of one
pass after a warm-up pass and the largest absolute difference from the
embeddings the benchmark expects. Exits quietly with status 1 where torch or
transformers is missing.

    python3 benches/real_models_peer.py MODEL_DIR REQUEST.json
"""
import json
import sys
import time

try:
    import torch
    from transformers import AutoModel
except ImportError:
    sys.exit(1)


def padded(batch, pad_id):
    longest = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    types = torch.zeros((len(batch), longest), dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, (sequence, type_ids) in enumerate(batch):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        types[row, : len(sequence)] = torch.tensor(type_ids)
        mask[row, : len(sequence)] = 1
    return ids, types, mask


def main():
    folder, request_path = sys.argv[1], sys.argv[2]
    with open(request_path) as f:
        request = json.load(f)
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    pad_id = model.config.pad_token_id or 0
    inputs = [padded(batch, pad_id) for batch in request["batches"]]

    def one_pass():
        embeddings = []
        with torch.inference_mode():
            for ids, types, mask in inputs:
                states = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
                states = states.last_hidden_state
                weights = mask.unsqueeze(-1).float()
                pooled = (states * weights).sum(1) / weights.sum(1)
                if request["normalize"]:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                embeddings.append(pooled)
        return torch.cat(embeddings)

    one_pass()
    start = time.perf_counter()
    embeddings = one_pass()
    seconds = time.perf_counter() - start
    expected = torch.tensor(request["expected"]).reshape(embeddings.shape)
    print(seconds, (embeddings - expected).abs().max().item())


if __name__ == "__main__":
    main()
