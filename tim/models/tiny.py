"""Random-weight models and a byte-level tokenizer, built offline.

Tests, benchmarks and ``tim stress`` run on these. Their text is noise, but every id
decodes, so the whole pipeline (chat template, parser, grammar) runs as with a real model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tim.models.loading import LoadedModel, skip_hf_init

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["TINY_ARCHS", "SPECIAL_TOKENS", "tiny_tokenizer", "tiny_model"]

TINY_ARCHS = ("llama", "qwen2", "qwen3", "mistral", "cohere", "phi3")
SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
NUM_BYTE_TOKENS = 256

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_tokenizer(*, model_max_length: int = 512,
                   merged: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ids 0..255 are the bytes, then the ChatML specials.

    ``<|im_start|>`` = 256, ``<|im_end|>`` = 257 (eos), ``<|endoftext|>`` = 258 (pad).
    There are no merges, so any text round-trips byte for byte. Ids past the vocabulary
    decode to nothing, and a cut UTF-8 sequence decodes to U+FFFD.

    ``merged`` adds, for each string, a token made by merges (and one for each of its
    prefixes, ids from 259 on), for tests that need a token spanning what a real tokenizer
    merges (``"],\\n"``, as Qwen2's does); text is then not split before the merges.

    Examples
    --------
    >>> tok = tiny_tokenizer()
    >>> tok.encode("hé", add_special_tokens=False)
    [104, 195, 169]
    >>> tok.decode([104, 195, 169, 257])
    'hé<|im_end|>'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = _bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(NUM_BYTE_TOKENS)}
    vocab.update({tok: NUM_BYTE_TOKENS + i for i, tok in enumerate(SPECIAL_TOKENS)})
    merges = []
    for text in merged:
        pieces = [alphabet[b] for b in text.encode()]
        for piece in pieces[1:]:
            merges.append((pieces[0], piece))
            pieces[0] += piece
            vocab.setdefault(pieces[0], len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                     use_regex=not merged)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's printable stand-ins for the 256 bytes, as the ByteLevel pre-tokenizer emits.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def tiny_model(
    arch: str = "llama",
    *,
    num_layers: int = 2,
    hidden_size: int = 64,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    head_dim: int | None = None,
    max_position_embeddings: int = 32768,
    rope_parameters: dict | None = None,
    vocab_size: int | None = None,
    seed: int = 0,
    **overrides: Any,
) -> LoadedModel:
    """A random-weight causal LM of a given architecture, fp32, on CPU, in eval mode.

    Parameters
    ----------
    arch : {"llama", "qwen2", "qwen3", "mistral", "cohere", "phi3"}
        Cohere has interleaved RoPE (its ``logit_scale`` is set to 1 here, for lively
        logits); Phi-3 takes ``partial_rotary_factor`` for RoPE on part of each head.
    num_layers, hidden_size, num_heads, num_kv_heads : int
        The shape. ``num_heads % num_kv_heads == 0``.
    head_dim : int, optional
        Defaults to ``hidden_size // num_heads``.
    max_position_embeddings : int
        The context window; also the tokenizer's ``model_max_length``. The engine stops a
        run at it (``EngineConfig.max_position``'s default), so the default is as large as
        the default KV budget: format instructions alone take 1,300-2,000 byte tokens. Pass
        a small one to test a window.
    rope_parameters : dict, optional
        e.g. ``{"rope_type": "llama3", "factor": 8.0, ...}``; default RoPE, theta 1e4.
    vocab_size : int, optional
        Logit width; defaults to the tokenizer's 259. A larger one gives a real-shaped
        model (e.g. Qwen3-0.6B's 151936); ids past 259 decode to nothing.
    seed : int
        Same seed, same weights. The global torch RNG is not touched.
    **overrides
        Any other config field (``intermediate_size``, ``tie_word_embeddings``,
        ``sliding_window``, ``attn_implementation``, ...).

    Returns
    -------
    LoadedModel

    Notes
    -----
    Weights are N(0, 1/fan_in), embeddings N(0, 1/hidden_size), norms 1, biases 0. This
    is livelier than transformers' N(0, 0.02²): attention is far from uniform, so a
    wrong mask or position shows up clearly in the logits. A Qwen3-0.6B shape builds in
    about 10 s on 2 CPU cores (random number generation dominates).

    Examples
    --------
    >>> loaded = tiny_model("qwen3", num_layers=1)
    >>> loaded.model.config.model_type, loaded.model.config.vocab_size, len(loaded.tokenizer)
    ('qwen3', 259, 259)
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if arch not in TINY_ARCHS:
        raise ValueError(f"arch must be one of {TINY_ARCHS}, got {arch!r}")
    if num_heads % num_kv_heads:
        raise ValueError(
            f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})"
        )
    tokenizer = tiny_tokenizer(model_max_length=max_position_embeddings)
    if vocab_size is not None and vocab_size < len(tokenizer):
        raise ValueError(
            f"vocab_size must be at least the tokenizer's {len(tokenizer)}, got {vocab_size}"
        )
    fields: dict[str, Any] = {
        "vocab_size": vocab_size or len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "head_dim": head_dim or hidden_size // num_heads,
        "max_position_embeddings": max_position_embeddings,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            **(rope_parameters or {}),
        },
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **({"logit_scale": 1.0} if arch == "cohere" else {}),
        **overrides,
    }
    config = AutoConfig.for_model(arch, **fields)
    with skip_hf_init():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _init_random(model, seed)
    if config.tie_word_embeddings:  # from_config leaves lm_head a separate matrix
        model.lm_head.weight = model.get_input_embeddings().weight
    name = f"tiny-{arch}-L{num_layers}-H{hidden_size}"
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, name=name)


def _init_random(model: Any, seed: int) -> None:
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    done: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if id(param) in done:  # tied embeddings
                    continue
                done.add(id(param))
                if isinstance(module, nn.Linear) and name == "weight":
                    param.normal_(0.0, module.in_features**-0.5, generator=generator)
                elif isinstance(module, nn.Embedding):
                    param.normal_(0.0, module.embedding_dim**-0.5, generator=generator)
                elif name == "bias":
                    param.zero_()
                else:
                    assert "Norm" in type(module).__name__, (type(module).__name__, name)
                    param.fill_(1.0)
