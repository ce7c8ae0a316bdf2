"""Random-weight Llama GGUFs that borrow a real model's tokenizer.

For tests and benchmarks of the runtime: a random model is the worst case for constrained
decoding (it wants every token equally) and lets benchmarks pick a size where compute, not
per-call overhead, dominates. The output is nonsense by design.
"""

from __future__ import annotations

from pathlib import Path

_SKIPPED_KEYS = ("GGUF.", "general.architecture", "llama.")


def write_random_llama(
    path: Path,
    *,
    tokenizer_from: Path,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 172,
    n_ctx_train: int = 2048,
    n_vocab: int | None = None,
    seed: int = 0,
) -> Path:
    """Write a Llama GGUF with random F32 weights and the tokenizer of `tokenizer_from`.

    `n_vocab` larger than that tokenizer's pads it with unused tokens (the tokenizer never
    produces them; the model still scores them): the shape of a model with a bigger
    vocabulary, such as Qwen2's 151,936 tokens, for measuring what the vocabulary costs.
    """
    import gguf
    import numpy as np

    source = gguf.GGUFReader(tokenizer_from)
    own = len(source.fields["tokenizer.ggml.tokens"].contents())
    n_vocab = n_vocab or own
    padding = {
        "tokenizer.ggml.tokens": [f"<unused{i}>" for i in range(n_vocab - own)],
        "tokenizer.ggml.scores": [0.0] * (n_vocab - own),
        "tokenizer.ggml.token_type": [int(gguf.TokenType.UNUSED)] * (n_vocab - own),
    }
    writer = gguf.GGUFWriter(path, "llama")
    for key, field in source.fields.items():
        if key.startswith(_SKIPPED_KEYS):
            continue
        sub_type = field.types[1] if len(field.types) > 1 else None
        value = field.contents()
        if key in padding:
            value = [*value, *padding[key]]  # type: ignore[misc]
        writer.add_key_value(key, value, field.types[0], sub_type)
    head_dim = n_embd // n_head
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_block_count(n_layer)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)

    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * (1.0 / np.sqrt(shape[-1]))).astype(np.float32)

    kv_dim = head_dim * n_head_kv
    writer.add_tensor("token_embd.weight", weight(n_vocab, n_embd))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("output.weight", weight(n_vocab, n_embd))
    for i in range(n_layer):
        block = f"blk.{i}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{block}.attn_q.weight", weight(n_embd, n_embd))
        writer.add_tensor(f"{block}.attn_k.weight", weight(kv_dim, n_embd))
        writer.add_tensor(f"{block}.attn_v.weight", weight(kv_dim, n_embd))
        writer.add_tensor(f"{block}.attn_output.weight", weight(n_embd, n_embd))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"{block}.ffn_up.weight", weight(n_ff, n_embd))
        writer.add_tensor(f"{block}.ffn_down.weight", weight(n_embd, n_ff))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
