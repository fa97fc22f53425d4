"""What `rlsys eval --model X` may name, resolved and checked before anything loads: a built-in
name, an HF model folder, a run folder (its `model/`, or its `adapter/` on the run's base model),
a PEFT adapter folder (on the base it records), or `ADAPTER@BASE`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlsys.models.catalog import BUILTIN, resolve_model
from rlsys.errors import ModelNotFoundError

WHAT = ("give a built-in name (" + ", ".join(BUILTIN) + "), an HF model folder (with config.json), a run folder "
        "(with model/ or adapter/), a PEFT adapter folder (with adapter_config.json), or ADAPTER@BASE")


@dataclass
class EvalModel:
    label: str
    path: str
    """The HF folder of the model (the base, with an adapter)."""
    adapter: str | None = None


def _tensor_shapes(folder: Path, prefix_strip: str = "") -> dict[str, list[int]]:
    from safetensors import safe_open

    shapes = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as fh:
            for key in fh.keys():
                shapes[key.removeprefix(prefix_strip)] = list(fh.get_slice(key).get_shape())
    return shapes


def check_adapter_fits(adapter: Path, base: Path) -> None:
    """Every LoRA pair must sit on a linear layer of the base with matching in/out sizes
    (lora_A: [r, in], lora_B: [out, r], base weight: [out, in])."""
    lora = _tensor_shapes(adapter, "base_model.model.")
    if not lora:
        raise ModelNotFoundError(f"adapter {adapter}: no adapter_model.safetensors")
    weights = _tensor_shapes(base)
    if not weights:
        return  # a .bin-only base: nothing to compare without loading it
    for key, shape in lora.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0]
        target = weights.get(f"{module}.weight")
        b_shape = lora.get(key.replace(".lora_A.", ".lora_B."))
        if target is None:
            raise ModelNotFoundError(f"adapter {adapter} does not match base {base}: the base has no layer "
                                     f"{module} (trained on another architecture?); pass the right base as ADAPTER@BASE")
        if b_shape is None or [b_shape[0], shape[1]] != target:
            raise ModelNotFoundError(f"adapter {adapter} does not match base {base}: {module} is {target} in the base "
                                     f"but the adapter expects {[b_shape[0] if b_shape else '?', shape[1]]}; "
                                     "pass the right base as ADAPTER@BASE")


def _adapter_model(label: str, adapter: Path, base: str | None) -> EvalModel:
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = base or config.get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(f"adapter {adapter} names no base model: pass it as {adapter}@BASE")
    base_path = resolve_model(base)
    check_adapter_fits(adapter, Path(base_path))
    return EvalModel(label, base_path, str(adapter.resolve()))


def resolve_eval_model(spec: str) -> EvalModel:
    adapter_spec, _, base = spec.partition("@")
    path = Path(adapter_spec).expanduser()
    if base:
        if not (path / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"--model {spec}: {path} is not a PEFT adapter folder (no adapter_config.json)")
        return _adapter_model(spec, path, base)
    if path.is_dir() and (path / "adapter_config.json").is_file():
        return _adapter_model(spec, path, None)
    if path.is_dir() and (path / "config.yaml").is_file() and not (path / "config.json").is_file():
        if (path / "model" / "config.json").is_file():
            return EvalModel(spec, str((path / "model").resolve()))
        if (path / "adapter" / "adapter_config.json").is_file():
            run_base = (yaml.safe_load((path / "config.yaml").read_text()) or {}).get("model", {}).get("path")
            return _adapter_model(spec, path / "adapter", run_base)
        raise ModelNotFoundError(f"--model {spec}: the run folder has no model/ or adapter/ (did the run finish?)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelNotFoundError(f"--model {spec} is not a model: no config.json; {WHAT}")
    if not path.exists() and spec not in BUILTIN and "/" not in spec.strip("/"):
        raise ModelNotFoundError(f"--model {spec}: no such folder or built-in name; {WHAT}")
    return EvalModel(spec, resolve_model(spec))
