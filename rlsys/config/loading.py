"""YAML files plus `a.b=value` overrides into a validated `Config`; `dump_config` writes it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rlsys.config.schema import Config
from rlsys.errors import ConfigError

def _parse_value(text: str) -> Any:
    # YAML scalars give ints, floats, bools, null and lists the same way the file does;
    # text that is not valid YAML (e.g. "{question} ...") stays a string.
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form a.b=value")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(value)
    return raw


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown key (check the spelling; see `rlsys validate` for valid keys)")
        else:
            lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    raw: dict[str, Any] = {}
    source = "(defaults)"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        if loaded is None:
            raise ConfigError(f"config file {p} is empty: write the settings to use (configs/tiny/smoke.yaml "
                              "is a small example); an empty file is refused rather than run with defaults")
        raw = loaded
    raw = apply_overrides(raw, overrides or [])
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        suffix = f" (with overrides {overrides})" if overrides else ""
        raise ConfigError(_format_errors(err, source + suffix)) from None


def dump_config(cfg: Config) -> str:
    notes = "".join(f"# {note}\n" for note in cfg._dtype_notes)
    return notes + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
