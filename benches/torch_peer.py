#!/usr/bin/env python3
"""The PyTorch peer of benches/encoder.rs and benches/train_step.rs, on the
CPU with random weights (hidden 768, 12 heads, FFN 3072): the median seconds
of a forward pass of BertModel, or with --train of one optimizer step of
BertForSequenceClassification (2 labels, dropout on: forward, loss,
backward, clipping at a global norm of 1.0, AdamW), each after a warm-up.
Exits quietly with status 1 where torch or transformers is missing."""
import argparse
import statistics
import sys
import time

try:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel
except ImportError:
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--train", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = BertConfig(hidden_size=768, num_hidden_layers=args.layers, num_attention_heads=12,
                        intermediate_size=3072, num_labels=2)
    ids = torch.randint(5, 20000, (args.batch, args.seq))
    if args.train:
        model = BertForSequenceClassification(config).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, eps=1e-8, weight_decay=0.0)
        types = (torch.arange(args.seq) >= args.seq // 2).long().expand(args.batch, -1)
        labels = torch.arange(args.batch) % 2

        def once():
            loss = model(input_ids=ids, token_type_ids=types, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
    else:
        model = BertModel(config, add_pooling_layer=False).eval()

        def once():
            with torch.inference_mode():
                model(input_ids=ids)

    once()
    times = []
    for _ in range(max(args.runs, 1)):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    print(statistics.median(times))


if __name__ == "__main__":
    main()
