"""`rlsys adapt-tokenizer`: a language's frequent subwords added as tokens, and the model resized."""

from __future__ import annotations

import json

NAME, HELP = "adapt-tokenizer", "add a language's frequent subwords as tokens; write a resized model"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model path or built-in name")
    p.add_argument("--words", default="/usr/share/dict/faroese", help="word list, one word per line")
    p.add_argument("--num-tokens", type=int, default=128)
    p.add_argument("--max-words", type=int, default=50000, help="words sampled from the list")
    p.add_argument("--out", required=True, help="output model folder (must not exist)")


def readable_tokens(model_dir: str, tokens: list[str]) -> list[str]:
    """Byte-level BPE spells 'ð' as 'Ã°'; show the text each new token stands for."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    return [tok.convert_tokens_to_string([t]) for t in tokens]


def run(args) -> int:
    from rlsys.models.catalog import resolve_model
    from rlsys.models.tokenizers import adapt_model, read_words

    words = read_words(args.words, args.max_words)
    result = adapt_model(resolve_model(args.model), words, args.num_tokens, args.out)
    print(json.dumps({"out": args.out, "new_tokens": len(result.new_tokens),
                      "tokens_per_word_before": result.tokens_per_word_before,
                      "tokens_per_word_after": result.tokens_per_word_after,
                      "examples": readable_tokens(args.out, result.new_tokens[:20])}, ensure_ascii=False))
    return 0
