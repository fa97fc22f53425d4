"""The configuration reference (docs/reference/configuration.md) is generated from the schema
and kept in step with it: the committed page is what the generator gives now, and, read back
by a Markdown table parser of this file's own (not the generator's helpers), it lists every
key of every section and algorithm type with its default, each key having a docstring."""

import re
import typing

import pytest
import yaml
from pydantic import BaseModel, Field, TypeAdapter, create_model

from rlsys.config.base import Section
from rlsys.config.reference import main, render_reference
from rlsys.config.run import RunConfig
from rlsys.config.schema import Config

from ...conftest import REPO

PAGE = REPO / "docs" / "reference" / "configuration.md"
REGENERATE = ".venv/bin/python -m rlsys.config.reference --out docs/reference/configuration.md"


def _committed() -> str:
    assert PAGE.is_file(), f"{PAGE.relative_to(REPO)} is missing: generate it with `{REGENERATE}`"
    return PAGE.read_text(encoding="utf-8")


# --- the page, parsed by hand ---------------------------------------------------------------

def _cell(text: str) -> str:
    """A cell's text as a reader sees it: Markdown's backslash escapes (of ASCII punctuation)
    undone, `&lt;` as `<`."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text.strip()).replace("&lt;", "<")


def _unquote(cell: str) -> str:
    return cell[1:-1] if len(cell) > 1 and cell[0] == cell[-1] == "`" else cell


def page_tables(page: str) -> dict[str, dict[str, dict[str, str]]]:
    """heading text -> {key -> {column -> cell}}: the table under each heading (before the next)."""
    tables: dict[str, dict[str, dict[str, str]]] = {}
    heading, header = None, None
    for line in page.splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("#").strip(), None
            assert heading not in tables, f"two headings read {heading!r} (MkDocs anchors need unique headings)"
            tables[heading] = {}
        elif line.startswith("|") and heading is not None:
            cells = [_cell(c) for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header = cells
            elif not all(set(c) <= set("-: ") for c in cells):
                assert len(cells) == len(header), f"under {heading!r}, a row of {len(cells)} cells: {line}"
                row = dict(zip(header, cells))
                tables[heading][_unquote(row["Key"])] = row
        else:
            header = None
    return tables


# --- the schema, walked independently of the generator -------------------------------------

def _sections_in(tp) -> list[type[Section]]:
    if isinstance(tp, type) and issubclass(tp, Section):
        return [tp]
    return [s for arg in typing.get_args(tp) for s in _sections_in(arg)]


def _is_list(tp) -> bool:
    return any(typing.get_origin(t) is list for t in (tp, *typing.get_args(tp)))


def schema_sections(root: type[Section]) -> list[tuple[str, str, type[Section]]]:
    """(heading, dotted prefix, class) of every section the page must have: the top-level
    keys, each algorithm type ("algorithm (type: grpo)"), and nested sections by dotted path."""
    def walk(cls, prefix, heading):
        found = [(heading, prefix, cls)]
        for name, field in cls.model_fields.items():
            for sub in _sections_in(field.annotation):
                path = f"{prefix}.{name}" + ("[]" if _is_list(field.annotation) else "")
                found += walk(sub, path, path)
        return found

    out = []
    for name, field in root.model_fields.items():
        members = _sections_in(field.annotation)
        assert members, f"top-level key {name} is not a section"
        if len(members) == 1:
            out += walk(members[0], name, name)
        else:
            for member in members:
                out += walk(member, name, f"{name} (type: {member.model_fields['type'].default})")
    return out


def expected_default(field) -> str:
    """The default as YAML writes it on one line; `{}` for a section left at its defaults."""
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel) and value == type(value)():
        return "{}"
    plain = TypeAdapter(field.annotation).dump_python(value, mode="json")
    text = yaml.safe_dump(plain, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def problems(page: str, root: type[Section] = Config) -> list[str]:
    """What the page lacks against the schema `root`; empty when it documents every key."""
    tables, found = page_tables(page), []
    top = [line[3:].strip() for line in page.splitlines() if line.startswith("## ")]
    if [t for t in top if t in root.model_fields] != list(root.model_fields):
        found.append(f"the top-level sections are not {list(root.model_fields)} in that order: {top}")
    for heading, prefix, cls in schema_sections(root):
        if heading not in tables:
            found.append(f"no section headed {heading!r}")
            continue
        rows = tables[heading]
        keys = [f"{prefix}.{name}" for name in cls.model_fields]
        found += [f"{heading}: {key} is on the page but not in the schema" for key in rows if key not in keys]
        for name, field in cls.model_fields.items():
            key = f"{prefix}.{name}"
            if not (field.description or "").strip():
                found.append(f"{key} has no description (write a docstring under the field)")
            if key not in rows:
                found.append(f"{heading}: no row for {key}")
                continue
            row = rows[key]
            if _unquote(row["Default"]) != expected_default(field):
                found.append(f"{key}: default {row['Default']!r} on the page, {expected_default(field)!r} in the schema")
            if row["Description"].replace("`", "") != " ".join((field.description or "").split()).replace("`", ""):
                found.append(f"{key}: the description on the page is not the field's docstring")
    return found


# --- the tests ------------------------------------------------------------------------------

def test_committed_page_is_what_the_generator_gives():
    page, fresh = _committed(), render_reference()
    assert page.splitlines()[0].startswith("Generated") and REGENERATE in page.splitlines()[0]
    if page != fresh:
        old, new = page.splitlines(), fresh.splitlines()
        at = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        pytest.fail(f"docs/reference/configuration.md is out of date with the schema in rlsys/config/ "
                    f"(first difference at line {at + 1}); regenerate it with\n    {REGENERATE}")


def test_every_key_is_documented_and_listed_with_its_default():
    page = _committed()
    found = problems(page)
    assert not found, "\n".join(found)
    tables = page_tables(page)
    # the walk covers the whole schema: every algorithm type, nested and list-item sections
    for heading in ("algorithm (type: grpo)", "algorithm (type: ppo)", "algorithm (type: dpo)",
                    "data.preferences.min_words", "model.lora", "reward.terms[]"):
        assert tables[heading], heading
    assert tables["algorithm (type: ppo)"]["algorithm.kl_beta"]["Default"] == "`0.0`"
    assert tables["algorithm (type: grpo)"]["algorithm.kl_beta"]["Default"] == "`0.1`"
    assert tables["tracking"]["tracking.console_level"]["Type"] == '"quiet" | "verbose"'
    assert tables["rollout"]["rollout.resources"]["Type"] == "dict[str, float]"
    assert tables["rollout"]["rollout.top_p"]["Allowed"] == "`> 0`, `<= 1`"
    assert tables["reward.terms[]"]["reward.terms[].name"]["Default"] == "**required**"
    assert tables["data"]["data.question_template"]["Default"] == "`'{question}'`"
    assert sum(len(rows) for rows in tables.values()) == sum(
        len(cls.model_fields) for _, _, cls in schema_sections(Config))


def test_the_check_catches_a_missing_row_and_a_wrong_default():
    page = _committed()
    row = next(line for line in page.splitlines() if line.startswith("| `learner.lr` |"))
    assert any("no row for learner.lr" in p for p in problems(page.replace(row + "\n", "")))
    wrong = page.replace("| `rollout.group_size` | int | `8` |", "| `rollout.group_size` | int | `9` |")
    assert wrong != page
    assert any(p.startswith("rollout.group_size: default") for p in problems(wrong))


def test_a_new_key_without_docstring_or_regeneration_is_caught():
    """A key added to a section (here to a copy of `run`) makes the committed page stale, and
    without a docstring the key is reported as undocumented."""
    run_copy = create_model("RunCopy", __base__=RunConfig, new_key=(int, Field(3, ge=1)))
    config_copy = create_model("ConfigCopy", __base__=Config, run=(run_copy, Field(default_factory=run_copy)))
    page = _committed()
    rendered = render_reference(config_copy)
    assert rendered != page and "| `run.new_key` | int | `3` | `>= 1` |" in rendered
    found = problems(page, config_copy)
    assert "run.new_key has no description (write a docstring under the field)" in found
    assert "run: no row for run.new_key" in found
    assert "run: no row for run.new_key" not in problems(rendered, config_copy)


def test_command_writes_the_page(tmp_path, capsys):
    out = tmp_path / "reference" / "configuration.md"
    assert main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_reference()
    assert main([]) == 0
    assert capsys.readouterr().out == render_reference()
