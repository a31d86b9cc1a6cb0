#!/usr/bin/env python3
"""The PyTorch peer of benches/train_step.rs: one optimizer step of a
BERT-base-shaped BertForSequenceClassification (random weights, 2 labels,
dropout on) on the CPU: forward, loss, backward, clipping at a global norm
of 1.0, AdamW. Prints the median seconds of a step after a warm-up step.
Exits quietly with status 1 where torch or transformers is missing."""
import argparse
import statistics
import sys
import time

try:
    import torch
    from transformers import BertConfig, BertForSequenceClassification
except ImportError:
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = BertConfig(hidden_size=768, num_hidden_layers=args.layers, num_attention_heads=12,
                        intermediate_size=3072, num_labels=2)
    model = BertForSequenceClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, eps=1e-8, weight_decay=0.0)
    ids = torch.randint(5, 20000, (args.batch, args.seq))
    types = (torch.arange(args.seq) >= args.seq // 2).long().expand(args.batch, -1)
    labels = torch.arange(args.batch) % 2

    def step():
        loss = model(input_ids=ids, token_type_ids=types, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()

    step()
    times = []
    for _ in range(max(args.runs, 1)):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(statistics.median(times))


if __name__ == "__main__":
    main()
