#!/usr/bin/env python3
"""The PyTorch peer of benches/encoder.rs: a BERT-base-shaped BertModel with
random weights on the CPU; prints the median seconds of one forward pass.
Exits quietly with status 1 where torch or transformers is missing."""
import argparse
import statistics
import sys
import time

try:
    import torch
    from transformers import BertConfig, BertModel
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
    model = BertModel(BertConfig(hidden_size=768, num_hidden_layers=args.layers, num_attention_heads=12,
                                 intermediate_size=3072), add_pooling_layer=False).eval()
    ids = torch.randint(5, 20000, (args.batch, args.seq))
    with torch.inference_mode():
        model(input_ids=ids)
        times = []
        for _ in range(max(args.runs, 1)):
            start = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - start)
    print(statistics.median(times))


if __name__ == "__main__":
    main()
