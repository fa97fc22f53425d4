"""`rlsys make-teacher CONFIG --out DIR`: a task teacher fine-tuned on worked solutions.

Distillation needs a teacher that is better than the student at the task. On a machine with
no model hub the only candidates are the small packaged models, so this builds one: the
config's `model.path` fine-tuned (plain supervised next-token loss on the completion only)
on worked solutions of the config's *training* tasks (`rlsys.data.solutions`), then its
greedy accuracy is measured on the held-out tasks the runs use, before and after. The
prompt is the student's own (`data.template`, `data.system_prompt`), so the teacher needs no
`question_template`.

It runs in this process with plain torch (one model, a few hundred small steps): a data-
preparation step like `make-pairs`, not a training mode of the learner actors."""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

from rlsys.commands.arguments import config_arguments
from rlsys.config import Config, load_config

NAME, HELP = "make-teacher", "fine-tune model.path on worked solutions of data: a task teacher"


def add_arguments(p) -> None:
    config_arguments(p, "YAML config file (model, data: the student's run config)")
    p.add_argument("--out", required=True, help="model folder to write (must not exist)")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)


def _batches(pairs: list[tuple[list[int], list[int]]], batch: int, steps: int, seed: int):
    """`steps` batches, shuffled passes over the pairs."""
    rng, order = random.Random(seed), []
    for _ in range(steps):
        if len(order) < batch:
            more = list(range(len(pairs)))
            rng.shuffle(more)
            order += more
        yield [pairs[i] for i in order[:batch]]
        order = order[batch:]


def _loss(model, chunk, pad: int):
    """Mean next-token loss over the completion tokens of right-padded prompt+completion rows."""
    import torch

    width = max(len(p) + len(c) for p, c in chunk)
    ids = torch.full((len(chunk), width), pad)
    labels = torch.full((len(chunk), width), -100)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, (p, c) in enumerate(chunk):
        ids[row, : len(p) + len(c)] = torch.tensor(p + c)
        labels[row, len(p) : len(p) + len(c)] = torch.tensor(c)
        mask[row, : len(p) + len(c)] = 1
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


def make_teacher(cfg: Config, out: str, steps: int, lr: float, batch_size: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.data.solutions import worked_solution
    from rlsys.data.sources import load_train_eval
    from rlsys.data.templates import prompt_token_ids, render_prompt
    from rlsys.eval.metrics import task_metrics
    from rlsys.models.catalog import resolve_model
    from rlsys.config.dtypes import resolve_dtype
    from rlsys.models.greedy import greedy_answers

    target = Path(out)
    if target.exists():
        raise FileExistsError(f"{target} exists; pick another --out (a teacher is never written over)")
    train, held_out = load_train_eval(cfg.data, cfg.run.seed)
    solutions = [worked_solution(t) for t in train]  # refuses tasks without one, before any training
    base = resolve_model(cfg.model.path)
    tok = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(cfg.run.seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    # fp32 master weights; bf16 autocast where the CPU has fast bf16 (as `model.dtype: auto`).
    bf16 = not torch.cuda.is_available() and resolve_dtype(cfg.model.dtype, False, "model.dtype") == "bfloat16"
    end = tok.eos_token_id  # the token a teacher scorer appends to a finished completion
    if end is None:
        raise ValueError(f"{cfg.model.path}: its tokenizer has no EOS token, so a worked solution has no "
                         f"end to learn; make-teacher needs a model whose tokenizer sets eos_token")

    def prompt_ids(question: str) -> list[int]:
        text = render_prompt(tok, question, cfg.data.template, cfg.data.system_prompt)
        return prompt_token_ids(tok, text)

    pairs = [(prompt_ids(t.question), tok(s, add_special_tokens=False).input_ids + [end])
             for t, s in zip(train, solutions)]
    eval_prompts = [prompt_ids(t.question) for t in held_out]
    max_tokens = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens

    def accuracy() -> tuple[dict[str, float], list[str]]:
        model.eval()
        texts = greedy_answers(model, tok, eval_prompts, max_tokens)
        model.train()
        lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
        return task_metrics(texts, [t.answer for t in held_out], lengths), texts

    started = time.perf_counter()
    before, _ = accuracy()
    print(f"make-teacher: {len(pairs)} worked solutions, e.g. {solutions[0]!r}; held-out greedy accuracy "
          f"before {before['accuracy']:.3f} ({len(held_out)} prompts)", file=sys.stderr, flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    pad = tok.pad_token_id if tok.pad_token_id is not None else end
    losses = []
    model.train()
    for step, chunk in enumerate(_batches(pairs, batch_size, steps, cfg.run.seed), start=1):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = _loss(model, chunk, pad)  # supervised next-token loss on the worked solutions
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 20 == 0 or step == steps:
            print(f"make-teacher: step {step}/{steps} loss {sum(losses[-20:]) / len(losses[-20:]):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    after, texts = accuracy()
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(tmp)  # bf16 on disk like the packaged models
    tok.save_pretrained(tmp)
    report = {"base": base, "out": str(target), "steps": steps, "lr": lr, "batch_size": batch_size,
              "train_solutions": len(pairs), "held_out": len(held_out), "eval_before": before,
              "eval_after": after, "loss_first": losses[0], "loss_last20": sum(losses[-20:]) / len(losses[-20:]),
              "seconds": time.perf_counter() - started, "sample_answers": texts[:5]}
    (tmp / "teacher.json").write_text(json.dumps(report, indent=1))
    tmp.rename(target)
    return report


def run(args) -> int:
    result = make_teacher(load_config(args.config, args.overrides), args.out, args.steps, args.lr, args.batch_size)
    print(json.dumps(result))
    return 0
