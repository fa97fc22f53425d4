"""Everything a run checks before any actor starts: model and teacher paths, data rows,
reward functions and dictionaries, tokenizer compatibility, and the run folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from rlsys.config import Config
from rlsys.data.sources import load_train_eval
from rlsys.errors import DataError
from rlsys.data.templates import prompt_token_ids, render_prompt
from rlsys.errors import RunError
from rlsys.models.catalog import resolve_model
from rlsys.rewards.registry import RewardSet
from rlsys.data.pair_encoding import PairEncoder
from rlsys.data.preferences import load_preferences
from rlsys.data.prepared import PreferenceSet, Prepared
from rlsys.records import PromptItem



def prepare_run_dir(cfg: Config, keep: bool = False) -> Path:
    """The run folder: new or empty, emptied with run.overwrite, or kept (`keep`: a run that
    continues from one of its checkpoints)."""
    run_dir = Path(cfg.run.dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not keep:
        if not cfg.run.overwrite:
            raise RunError(f"run folder {run_dir} is not empty; pick another run.dir or set run.overwrite=true")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def prepare(cfg: Config, with_pairs: bool = True) -> Prepared:
    """Every check that needs no actor: model path, data rows, reward functions (and the
    preference pairs of offline DPO, unless `with_pairs` is False: `make-pairs` writes them)."""
    from transformers import AutoTokenizer

    model_path = resolve_model(cfg.model.path)
    teacher_path = resolve_model(cfg.teacher.path) if cfg.teacher.path else None
    RewardSet(cfg.reward.terms, cfg.reward.combiner, cfg.reward.squash_temperature)
    critic_path = None
    if cfg.algorithm.type == "ppo":
        critic_path = resolve_model(cfg.critic.path) if cfg.critic.path else model_path
        check_critic_model(critic_path)
    for term in cfg.reward.terms:
        if term.name == "reward_model":
            check_reward_model_term(term.kwargs)
        if term.name == "language_fidelity":  # a missing dictionary fails here, not mid-run
            from rlsys.rewards.language import FAROESE_WORDLIST, load_lexicon

            load_lexicon(term.kwargs.get("wordlist", FAROESE_WORDLIST))
    train_tasks, eval_tasks = load_train_eval(cfg.data, cfg.run.seed)
    tok = AutoTokenizer.from_pretrained(model_path)
    if critic_path is not None and critic_path != model_path:
        check_critic_vocabulary(tok, AutoTokenizer.from_pretrained(critic_path), model_path, critic_path)
    same_vocab = False
    if teacher_path:
        teacher_tok = AutoTokenizer.from_pretrained(teacher_path)
        same_vocab = teacher_tok.get_vocab() == tok.get_vocab()
        if cfg.reward.combiner == "minillm":
            check_same_vocabulary(tok, teacher_tok, model_path, teacher_path)

    train, evaluation = render_items(cfg, tok, train_tasks), render_items(cfg, tok, eval_tasks)
    check_prompt_lengths(cfg, train, "training")
    check_prompt_lengths(cfg, evaluation, "held-out")
    offline_dpo = cfg.algorithm.type == "dpo" and not cfg.algorithm.online
    pairs = prepare_pairs(cfg, tok) if offline_dpo and with_pairs else None
    suite_tasks = []
    if cfg.eval.suite:
        from rlsys.eval.suite import load_suite
        from rlsys.eval.tasks import build_task

        from rlsys.eval.engine_tasks import prompt_items

        suite_tasks = [build_task(spec, cfg.eval.suite_limit) for spec in load_suite(cfg.eval.suite).tasks]
        for task in suite_tasks:  # a prompt too long for the engines fails here, not at the first evaluation
            if task.kind != "perplexity":
                prompt_items(task, tok, cfg.model.max_model_len)
    return Prepared(model_path, train, evaluation, teacher_path, same_vocab, critic_path, pairs, suite_tasks)


def render_items(cfg: Config, tok, tasks) -> list[PromptItem]:
    """Each task's prompt as the student sees it (`data.template`, `data.system_prompt`), tokenized."""
    out = []
    for t in tasks:
        text = render_prompt(tok, t.question, cfg.data.template, cfg.data.system_prompt)
        out.append(PromptItem(text, prompt_token_ids(tok, text), t.question, t.answer, t.metadata))
    return out


def training_prompts(cfg: Config) -> tuple[str, list[PromptItem]]:
    """The student's model folder and its training prompts: all `rlsys plan` needs of the data
    (no reward, teacher, critic or evaluation-suite checks)."""
    from transformers import AutoTokenizer

    model_path = resolve_model(cfg.model.path)
    train_tasks, _ = load_train_eval(cfg.data, cfg.run.seed)
    return model_path, render_items(cfg, AutoTokenizer.from_pretrained(model_path), train_tasks)


def prepare_pairs(cfg: Config, tok) -> PreferenceSet:
    """Read, check and split the preference pairs, and encode them; the drop summary is printed."""
    import sys

    encoder = PairEncoder(tok, cfg.data.system_prompt)
    limit = cfg.data.preferences.max_tokens or cfg.model.max_model_len
    data = cfg.data.model_copy(update={"preferences": cfg.data.preferences.model_copy(update={"max_tokens": limit})})
    train, heldout, report = load_preferences(data, cfg.run.seed, encoder.length)
    print(f"rlsys: {report.summary()}; {len(train)} for training, {len(heldout)} held out", file=sys.stderr)
    for example in report.examples[:5]:
        print(f"rlsys:   dropped {example}", file=sys.stderr)
    if len(train) < cfg.learner.mini_batch_size:
        raise DataError(f"{len(train)} training pairs are fewer than learner.mini_batch_size "
                        f"({cfg.learner.mini_batch_size}): add pairs or lower the mini-batch")
    return PreferenceSet([encoder.encode(p) for p in train], [encoder.encode(p) for p in heldout], heldout, report)


def check_critic_model(path: str) -> None:
    """The critic starts from a causal LM's decoder (or a critic a run saved)."""
    from transformers import AutoConfig

    try:
        architectures = AutoConfig.from_pretrained(path).architectures or []
    except (OSError, ValueError) as exc:
        raise RunError(f"critic.path: cannot read a model config at {path!r} ({exc})") from None
    if not any(a.endswith(("ForCausalLM", "ForTokenClassification")) for a in architectures):
        raise RunError(f"critic.path: {path} is a {', '.join(architectures) or 'model of unknown architecture'}, "
                       "not a causal LM; the critic is a causal LM's decoder with a value head: give a causal LM "
                       "(e.g. the policy's model, the default) or a critic saved by an earlier run")


def check_reward_model_term(kwargs: dict) -> None:
    """A `reward_model` term names a sequence classifier with a pad token, and only known settings."""
    from rlsys.models.reward_model_check import PLACEMENT_SETTINGS, REWARD_MODEL_SETTINGS, check_reward_model

    if "path" not in kwargs:
        raise RunError("reward term reward_model needs kwargs.path: a sequence-classification checkpoint")
    known = set(REWARD_MODEL_SETTINGS) | set(PLACEMENT_SETTINGS)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise RunError(f"reward term reward_model: unknown kwargs {unknown}; known: {', '.join(sorted(known))}")
    check_reward_model(resolve_model(kwargs["path"]))


def check_prompt_lengths(cfg: Config, items: list[PromptItem], which: str) -> None:
    """Every prompt must leave room for the completion in the engine's context."""
    new_tokens = max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0)
    room = cfg.model.max_model_len - new_tokens
    long = [it for it in items if len(it.prompt_ids) > room]
    if long:
        shown = "; ".join(f"{it.metadata.get('where', '?')} ({len(it.prompt_ids)} tokens)" for it in long[:5])
        more = f" and {len(long) - 5} more" if len(long) > 5 else ""
        raise DataError(
            f"{len(long)} {which} prompt(s) are longer than model.max_model_len - max new tokens = "
            f"{cfg.model.max_model_len} - {new_tokens} = {room} tokens: {shown}{more}. Raise model.max_model_len, "
            f"lower rollout.max_new_tokens, or drop these rows.")


def check_critic_vocabulary(policy_tok, critic_tok, policy_path: str, critic_path: str) -> None:
    """The critic reads the policy's token ids: the same id must be the same token to both."""
    if policy_tok.get_vocab() != critic_tok.get_vocab():
        raise RunError(
            f"critic.path: the critic's vocabulary ({critic_path}: {len(critic_tok)} tokens) differs from the "
            f"policy's ({policy_path}: {len(policy_tok)} tokens), and the critic values the policy's token ids "
            "as they are. Start the critic from a model with the policy's tokenizer (or leave critic.path unset "
            "to start it from the policy)."
        )


def check_same_vocabulary(student_tok, teacher_tok, student_path: str, teacher_path: str) -> None:
    """Per-token rewards compare the teacher's and the student's log-prob of the same token."""
    if student_tok.get_vocab() != teacher_tok.get_vocab():
        raise RunError(
            f"reward.combiner=minillm scores every student token with the teacher, but the teacher's "
            f"vocabulary ({teacher_path}: {len(teacher_tok)} tokens) differs from the student's "
            f"({student_path}: {len(student_tok)} tokens). Use a teacher with the student's tokenizer, "
            f"or the sequence reward `teacher_loglik` with reward.combiner=linear or squash, which "
            f"scores the completion text and works across tokenizers."
        )
