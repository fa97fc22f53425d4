"""The configuration reference page, rendered from the pydantic schema.

`docs/reference/configuration.md` lists every config key: one section per top-level key of
`Config`, in schema order, each with its class docstring and a table of its keys (dotted
name, type, default, allowed values and bounds, and the field's attribute docstring as its
description); a nested section gets a sub-section of its own, and `algorithm` one per `type`.
The page is generated, never edited by hand: document a key with a docstring under its field
in `rlsys/config/`, then regenerate the page with

    .venv/bin/python -m rlsys.config.reference --out docs/reference/configuration.md

(without `--out` the page goes to standard output). `render_reference` is pure: the page as
text, from the schema alone; tests/unit/config/test_config_reference.py fails while the
committed page differs from it.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from rlsys.config.base import Section
from rlsys.config.schema import Config

PAGE = "docs/reference/configuration.md"
COMMAND = f".venv/bin/python -m rlsys.config.reference --out {PAGE}"
COLUMNS = ("Key", "Type", "Default", "Allowed", "Description")
BOUNDS = ((annotated_types.Ge, "ge", ">="), (annotated_types.Gt, "gt", ">"),
          (annotated_types.Le, "le", "<="), (annotated_types.Lt, "lt", "<"))
CODE_SPAN = re.compile(r"(`[^`]*`)")
REQUIRED = "**required**"

INTRO = f"""\
Generated from the schema in `rlsys/config/` by `{COMMAND}`; do not edit it by hand.

# Configuration reference

A run is configured by a YAML file with one mapping per section below (`run:`, `model:`, ...).
Every key has a default, so a file names only what it changes; an unknown or misspelt key is an
error that names it. Keys can also be set on the command line after the file, as
`section.key=value` (`rlsys train CONFIG learner.lr=5e-6 rollout.group_size=4`); a nested
section takes one more dot per level (`data.preferences.path=pairs.jsonl`). The value is read
as YAML, so numbers, `true`/`false`, `null`, lists (`rollout.temperature_range=[0.7, 1.3]`)
and mappings (`model.lora={{}}`) come out typed, and text that is not valid YAML stays a string.
`rlsys validate CONFIG [section.key=value ...]` prints the resolved config, or its errors.

In the tables, **Default** is written as YAML would write it, and `{{}}` for a nested section
means each of its keys at its own default; **Allowed** gives the accepted values of a key that
has a fixed set, and the bounds of a number. Each description is the docstring of its field in
`rlsys/config/`: to change this page, change the docstring there and regenerate it."""


def render_reference(root: type[Section] = Config) -> str:
    """The reference page for `root` (the schema's `Config`, or a variant of it in tests)."""
    blocks = [INTRO]
    for name, field in root.model_fields.items():
        held = section_types(field.annotation)
        if not held:
            raise TypeError(f"{root.__name__}.{name} is not a section; the reference expects sections only at the top")
        if len(held) == 1:  # a top-level section's own docstring introduces it; the field's, if it has none
            own = held[0].__dict__.get("__doc__")
            blocks += section_blocks(held[0], name + item_suffix(field.annotation), None if own else field, 2)
            continue
        blocks += [f"## {name}", paragraph(field.description)]
        for variant in held:
            label = variant_label(variant, field.discriminator)
            blocks += section_blocks(variant, name, None, 3, heading=f"{name} ({label})", first=field.discriminator)
    return "\n\n".join(b for b in blocks if b).rstrip("\n") + "\n"


def section_blocks(cls: type[Section], path: str, field: FieldInfo | None, level: int,
                   heading: str | None = None, first: Any = None) -> list[str]:
    """A section's heading, description and table (key `first`, an algorithm's `type`, at the
    top), then its nested sections, depth first."""
    intro = [paragraph(field.description)] if field is not None and field.description else []
    if cls.__dict__.get("__doc__"):
        intro.append(paragraph(cls.__doc__))
    order = sorted(cls.model_fields, key=lambda name: name != first)
    rows = [table_row(f"{path}.{name}", cls.model_fields[name]) for name in order]
    blocks = [f"{'#' * min(level, 6)} {heading or path}", *dict.fromkeys(intro), table(rows)]
    for name, f in cls.model_fields.items():
        for nested in section_types(f.annotation):
            blocks += section_blocks(nested, f"{path}.{name}{item_suffix(f.annotation)}", f, level + 1)
    return blocks


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def table_row(key: str, field: FieldInfo) -> list[str]:
    default = default_text(field)
    return [code(key), plain(type_text(field.annotation)), default if default == REQUIRED else code(default),
            allowed_text(field), paragraph(field.description or "")]


def section_types(tp: Any) -> list[type[Section]]:
    """The sections a field's type holds: the type itself, the members of a union, list items."""
    if isinstance(tp, type) and issubclass(tp, Section):
        return [tp]
    found: list[type[Section]] = []
    for arg in get_args(tp):
        found += [s for s in section_types(arg) if s not in found]
    return found


def item_suffix(tp: Any) -> str:
    """`[]` for a list of sections (its items' keys are `path[].key`), else nothing."""
    return "[]" if any(get_origin(t) is list for t in (tp, *get_args(tp))) else ""


def variant_label(cls: type[Section], discriminator: Any) -> str:
    if isinstance(discriminator, str) and discriminator in cls.model_fields:
        return f"{discriminator}: {cls.model_fields[discriminator].default}"
    return cls.__name__


def type_text(tp: Any) -> str:
    """A type as a reader writes it: `int`, `"a" | "b"`, `list[str]`, `X | None`; a section: `section`."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is type(None):
        return "None"
    if origin is Annotated:
        return type_text(args[0])
    if origin is Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin in (Union, types.UnionType):
        parts = list(dict.fromkeys(type_text(a) for a in args if a is not type(None)))
        return " | ".join(parts + (["None"] if type(None) in args else []))
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_text(a) for a in args)}]"
    if isinstance(tp, type) and issubclass(tp, Section):
        return "section"
    return getattr(tp, "__name__", str(tp))


def literal_values(tp: Any) -> list[Any]:
    if get_origin(tp) is Literal:
        return list(get_args(tp))
    return [v for arg in get_args(tp) for v in literal_values(arg)]


def yaml_text(value: Any) -> str:
    """A value as YAML writes it in flow style, on one line: `true`, `null`, `[a, b]`, `'{question}'`."""
    text = yaml.safe_dump(to_jsonable_python(value), default_flow_style=True, width=2**31, sort_keys=False)
    return text.strip().removesuffix("\n...").strip()


def default_text(field: FieldInfo) -> str:
    """The default as YAML writes it (a factory's value; `{}` for a section at its defaults)."""
    if field.is_required():
        return REQUIRED
    value = field.get_default(call_default_factory=True)
    if isinstance(value, Section):
        try:
            if value == type(value)():
                return "{}"
        except ValueError:  # a section with required keys has no all-defaults form
            pass
    return yaml_text(value)


def allowed_text(field: FieldInfo) -> str:
    """The fixed values of a Literal type, and the bounds of a number or length."""
    parts = [code(yaml_text(v)) for v in literal_values(field.annotation)]
    for meta in field.metadata:
        parts += [code(f"{op} {getattr(meta, attr):g}") for kind, attr, op in BOUNDS if isinstance(meta, kind)]
        if isinstance(meta, annotated_types.MinLen):
            parts.append(f"at least {meta.min_length} item{'s' * (meta.min_length != 1)}")
        if isinstance(meta, annotated_types.MaxLen):
            parts.append(f"at most {meta.max_length} item{'s' * (meta.max_length != 1)}")
    return ", ".join(parts)


def plain(text: str) -> str:
    """Literal text for Markdown: the characters that would format, link or end a table cell
    are escaped (`{...}` would otherwise be read as attributes, `<...>` as HTML)."""
    return re.sub(r"([\\`*{}|])", r"\\\1", text).replace("<", "&lt;")


def code(text: str) -> str:
    """`text` as a code span; plain escaped text where it holds a `|` (a table would split there)."""
    return plain(text) if "|" in text or "`" in text else f"`{text}`"


def paragraph(text: str | None) -> str:
    """A docstring on one line, its Markdown kept (code spans, emphasis); outside code spans
    `\\`, `|`, `{`, `}` are escaped and `<` written as an entity."""
    parts = CODE_SPAN.split(" ".join((text or "").split()))
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(code(part[1:-1]))
        else:
            out.append(re.sub(r"([\\{}|])", r"\\\1", part).replace("<", "&lt;"))
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlsys.config.reference",
                                     description="Write the configuration reference page, rendered from the schema.")
    parser.add_argument("--out", help=f"write the page to this file (e.g. {PAGE}); default: standard output")
    args = parser.parse_args(argv)
    page = render_reference()
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
