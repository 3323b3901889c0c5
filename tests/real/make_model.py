"""The tiny llama-architecture GGUF models the real llama.cpp suite runs on, made from a seed.

No model may be downloaded, so the suite makes its own: a SentencePiece BPE vocabulary (byte
fallback, ChatML control tokens) trained on sentences generated here, random weights, a ChatML
chat template in `tokenizer.chat_template`, and — for the embedding variant — mean pooling so
`/v1/embeddings` returns one vector per input. The text it writes is gibberish, but the
tokenizer, template, sampler, SSE and usage paths are llama.cpp's own, and `temperature: 0` is
deterministic. The same seed gives byte-identical files.

    python -m tests.real.make_model OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import sentencepiece as spm

IM_START, IM_END = "<|im_start|>", "<|im_end|>"

# ChatML, written out rather than llama-cpp-python's own ChatML string so that the server renders
# the GGUF's template with Jinja (its "chat_template.default" handler) instead of a built-in.
CHAT_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\\nTools:\\n' }}"
    "{% for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{% endfor %}"
    "{{ '<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORD_TEXT = (
    "the a one some every small large quick lazy bright dark old new red blue green model token "
    "server gateway request reply stream route cost latency model group cloud local code test "
    "summary answer question task user assistant system tool weather city river mountain book "
    "runs reads writes sends routes counts returns answers streams stops waits jumps sleeps "
    "over under near after before with without into from quickly slowly quietly never always "
    "Oslo Paris Lima Tokyo Cairo alpha beta gamma delta zero one two three four five six seven"
)
WORDS = _WORD_TEXT.split()

# llama.cpp token types (gguf.TokenType): what each SentencePiece piece becomes in the vocab.
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6


@dataclass(frozen=True)
class Shape:
    """Hyper-parameters: a few hundred thousand parameters, context 512."""

    vocab_size: int = 768
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 4
    n_ff: int = 128
    n_ctx: int = 512


@dataclass(frozen=True)
class Vocab:
    tokens: list[str]
    scores: list[float]
    types: list[int]

    def index(self, piece: str) -> int:
        return self.tokens.index(piece)


@dataclass(frozen=True)
class TinyModels:
    chat: Path
    embed: Path


def corpus(rng: random.Random, sentences: int = 400) -> list[str]:
    """A few KB of generated sentences to train the vocabulary on."""
    lines = []
    for _ in range(sentences):
        words = rng.choices(WORDS, k=rng.randint(4, 12))
        punct = rng.choice(".?!,:;")
        lines.append(" ".join(words).capitalize() + punct + f" {rng.randint(0, 999)}")
    return lines


def train_vocab(lines: list[str], size: int) -> Vocab:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=size,
        hard_vocab_limit=False,
        byte_fallback=True,
        character_coverage=1.0,
        control_symbols=[IM_START, IM_END],
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        shuffle_input_sentence=False,
        num_threads=1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    ids = range(sp.get_piece_size())
    return Vocab(
        tokens=[sp.id_to_piece(i) for i in ids],
        scores=[float(sp.get_score(i)) for i in ids],
        types=[_token_type(sp, i) for i in ids],
    )


def _token_type(sp: spm.SentencePieceProcessor, i: int) -> int:
    if sp.is_unknown(i):
        return UNKNOWN
    if sp.is_control(i):
        return CONTROL
    return BYTE if sp.is_byte(i) else NORMAL


def weights(rng: np.random.Generator, shape: Shape, vocab: Vocab) -> dict[str, np.ndarray]:
    """Random float32 weights in numpy's (rows, cols) order; gguf reverses them for ggml."""
    n_vocab, d, ff = len(vocab.tokens), shape.n_embd, shape.n_ff
    d_kv = d // shape.n_head * shape.n_head_kv

    def normal(*dims: int, std: float = 0.5) -> np.ndarray:
        return rng.normal(0.0, std, size=dims).astype(np.float32)

    output = normal(n_vocab, d, std=1.0)
    # Rows of zeros give control, unknown and byte tokens a logit of 0, far below the best
    # ordinary piece: replies are whole pieces of text, never an early end-of-turn.
    output[[i for i, kind in enumerate(vocab.types) if kind != NORMAL]] = 0.0
    tensors = {"token_embd.weight": normal(n_vocab, d, std=1.0)}
    for n in range(shape.n_layer):
        tensors |= {
            f"blk.{n}.attn_norm.weight": np.ones(d, dtype=np.float32),
            f"blk.{n}.attn_q.weight": normal(d, d),
            f"blk.{n}.attn_k.weight": normal(d_kv, d),
            f"blk.{n}.attn_v.weight": normal(d_kv, d),
            f"blk.{n}.attn_output.weight": normal(d, d),
            f"blk.{n}.ffn_norm.weight": np.ones(d, dtype=np.float32),
            f"blk.{n}.ffn_gate.weight": normal(ff, d),
            f"blk.{n}.ffn_up.weight": normal(ff, d),
            f"blk.{n}.ffn_down.weight": normal(d, ff),
        }
    tensors["output_norm.weight"] = np.ones(d, dtype=np.float32)
    tensors["output.weight"] = output
    return tensors


def write_gguf(
    path: Path, shape: Shape, vocab: Vocab, tensors: dict[str, np.ndarray], *, pooling: bool
) -> None:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("triage-tiny-embed" if pooling else "triage-tiny")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _hyper_parameters(writer, shape, len(vocab.tokens))
    _tokenizer(writer, vocab)
    if pooling:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _hyper_parameters(writer: gguf.GGUFWriter, shape: Shape, n_vocab: int) -> None:
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(shape.n_ctx)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.n_embd // shape.n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)


def _tokenizer(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_bos_token_id(vocab.index("<s>"))
    writer.add_eos_token_id(vocab.index(IM_END))
    writer.add_unk_token_id(vocab.index("<unk>"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def make_models(out_dir: Path, *, seed: int = 0, shape: Shape | None = None) -> TinyModels:
    """Write `tiny-chat.gguf` and `tiny-embed.gguf` (same weights, mean pooling) into out_dir."""
    shape = shape or Shape()
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = train_vocab(corpus(random.Random(seed)), shape.vocab_size)
    tensors = weights(np.random.default_rng(seed), shape, vocab)
    models = TinyModels(chat=out_dir / "tiny-chat.gguf", embed=out_dir / "tiny-embed.gguf")
    write_gguf(models.chat, shape, vocab, tensors, pooling=False)
    write_gguf(models.embed, shape, vocab, tensors, pooling=True)
    return models


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    models = make_models(args.out_dir, seed=args.seed)
    elapsed = time.perf_counter() - started
    print(f"{models.chat}\n{models.embed}\n({elapsed:.2f}s)")


if __name__ == "__main__":
    main()
