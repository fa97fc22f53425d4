"""The evaluation suite file: a list of tasks, each with a `kind` and its own documented fields.

Every entry is checked (unknown keys, unknown kinds, missing fields) and every data file read
before any model loads; errors name the suite file and the line of the entry or key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, model_validator

from rlsys.errors import ConfigError
from rlsys.config import Section
from rlsys.data.writing_systems import SCRIPTS

KINDS = ("accuracy", "qa", "generation", "language", "perplexity")


class LanguageSettings(Section):
    """Language metrics of completions: dictionary coverage and ASCII flattening (with a word
    list), and the share of letters in a script."""

    wordlist: str | None = None
    """One word per line, e.g. /usr/share/dict/faroese (Debian `wfaroese`)."""
    script: str | None = None
    """One of rlsys.data.writing_systems.SCRIPTS, e.g. faroese_latin, mongolian_cyrillic."""

    @model_validator(mode="after")
    def _check(self) -> "LanguageSettings":
        if self.wordlist is None and self.script is None:
            raise ValueError("give a wordlist, a script, or both")
        if self.script is not None and self.script not in SCRIPTS:
            raise ValueError(f"unknown script {self.script!r}; known: {', '.join(SCRIPTS)}")
        return self


class TaskSpec(Section):
    name: str
    limit: int | None = Field(None, ge=1)
    """Use the first N examples (the CLI's --limit caps every task)."""
    max_new_tokens: int = Field(256, ge=1)
    system_prompt: str | None = None
    """None: the task's default instruction; "": no system message."""


class AccuracySpec(TaskSpec):
    """Final-answer accuracy (the rewards' answer parsing) on GSM8K-format JSONL, a `datasets`
    file, or a reasoning-gym generator; greedy, or pass@k over `samples` draws."""

    kind: Literal["accuracy"]
    source: Literal["gsm8k_jsonl", "reasoning_gym", "datasets"] = "gsm8k_jsonl"
    path: str | None = None
    task: str | None = None
    task_kwargs: dict[str, Any] = Field(default_factory=dict)
    size: int = Field(200, ge=1)
    """reasoning-gym: problems generated (with `seed`)."""
    seed: int = 0
    question_field: str = "question"
    answer_field: str = "answer"
    template: Literal["plain", "xml"] = "plain"
    samples: int = Field(1, ge=1)
    temperature: float | None = Field(None, ge=0.0)
    """Default: 0 (greedy) for one sample, 1.0 for several."""
    pass_at: list[int] = Field(default_factory=lambda: [1])

    @model_validator(mode="after")
    def _check(self) -> "AccuracySpec":
        if self.source == "reasoning_gym" and not self.task:
            raise ValueError("source reasoning_gym needs `task` (a reasoning-gym generator name)")
        if self.source != "reasoning_gym" and not self.path:
            raise ValueError(f"source {self.source} needs `path`")
        if any(k < 1 or k > self.samples for k in self.pass_at):
            raise ValueError(f"pass_at {self.pass_at}: every k must be between 1 and samples={self.samples}")
        return self


class QASpec(TaskSpec):
    """Extractive QA from SQuAD-format JSONL: `context`, `question`, `answers` (a list of
    strings, or SQuAD's {"text": [...], "answer_start": [...]}); exact match and F1."""

    kind: Literal["qa"]
    path: str
    context_field: str = "context"
    question_field: str = "question"
    answers_field: str = "answers"
    max_new_tokens: int = Field(32, ge=1)


class PromptFileSpec(TaskSpec):
    """Prompts from the `source_field` of each JSONL row, put into `instruction`."""

    path: str
    source_field: str = "source"
    instruction: str = "{source}"
    """The user message; {source} is replaced by the example's source text."""
    max_new_tokens: int = Field(64, ge=1)


class GenerationSpec(PromptFileSpec):
    """Reference-based generation (e.g. translation) from JSONL with a source and a reference:
    BLEU, chrF (sacrebleu), ROUGE-1/2/L; language metrics too with `language`."""

    kind: Literal["generation"]
    reference_field: str = "reference"
    language: LanguageSettings | None = None


class LanguageSpec(PromptFileSpec):
    """Language metrics of completions of the prompts of a JSONL file (no references needed)."""

    kind: Literal["language"]
    language: LanguageSettings


class PerplexitySpec(TaskSpec):
    """Perplexity per token and per word (and bits per byte) of a text file (documents separated
    by blank lines) or a JSONL file (`text_field`), scored in windows of `window` tokens that
    overlap by `window - stride` tokens of context."""

    kind: Literal["perplexity"]
    path: str
    text_field: str = "text"
    window: int = Field(1024, ge=8)
    stride: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "PerplexitySpec":
        if self.stride > self.window:
            raise ValueError(f"stride {self.stride} is larger than window {self.window}")
        return self


AnyTask = Annotated[Union[AccuracySpec, QASpec, GenerationSpec, LanguageSpec, PerplexitySpec], Field(discriminator="kind")]


class Suite(Section):
    tasks: list[AnyTask] = Field(min_length=1)
    workers: int = Field(1, ge=1)
    """vLLM rollout workers used for generation (the CLI's --workers overrides)."""

    @model_validator(mode="after")
    def _unique(self) -> "Suite":
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"task names must be unique; repeated: {dup}")
        return self


def _line_of(node: yaml.Node, loc: tuple) -> int:
    """1-based line of the deepest YAML node that `loc` (a pydantic error location) reaches."""
    line = node.start_mark.line
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == part]
            if not match:
                continue  # a discriminator tag, or a key that is missing
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            continue
        line = node.start_mark.line
    return line + 1


def _message(e: dict) -> str:
    if e["type"] == "extra_forbidden":
        return "unknown key (check the spelling)"
    if e["type"] == "union_tag_invalid":
        return f"unknown kind {e['input'].get('kind')!r}; kinds: {', '.join(KINDS)}"
    if e["type"] == "union_tag_not_found":
        return f"no `kind`; kinds: {', '.join(KINDS)}"
    return e["msg"].removeprefix("Value error, ")


def load_suite(path: str | Path) -> Suite:
    """The suite in `path`, relative data paths resolved against the suite file's folder and
    then the working directory; errors as `file:line: key: reason`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"suite file {p} does not exist")
    text = p.read_text(encoding="utf-8-sig")
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file {p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a suite is a mapping with a `tasks` list")
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as err:
        lines = [f"invalid suite {p}:"]
        for e in err.errors():
            key = ".".join(str(x) for x in e["loc"] if not (isinstance(x, str) and x in KINDS))
            lines.append(f"  {p}:{_line_of(root, e['loc'])}: {key or '(top level)'}: {_message(e)}")
        raise ConfigError("\n".join(lines)) from None
    for task in suite.tasks:
        for key in ("path", "wordlist"):
            holder = getattr(task, "language", None) if key == "wordlist" else task
            value = getattr(holder, key, None) if holder is not None else None
            if value and not Path(value).exists() and (p.parent / value).exists():
                setattr(holder, key, str(p.parent / value))
    return suite
