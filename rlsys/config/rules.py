"""Rules that span several config sections, one function each. Each raises a ValueError that
names the keys involved and what to set; `Config` runs them in the order of `RULES`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlsys.config.rewards import TEACHER_REWARDS

if TYPE_CHECKING:
    from rlsys.config.schema import Config


def preference_run(cfg: Config) -> None:
    """DPO steps over pairs: it needs pairs (or online sampling), no checkpoints, no async."""
    if cfg.algorithm.type != "dpo":
        return
    if not cfg.algorithm.online and not (cfg.data.preferences.path or cfg.data.preferences.dataset):
        raise ValueError("algorithm.type=dpo needs data.preferences.path (or .dataset), or algorithm.online=true")
    if cfg.run.checkpoint_every:
        raise ValueError("run.checkpoint_every: DPO runs do not checkpoint yet (RL runs do); set it to 0")
    if cfg.rollout.max_staleness:
        raise ValueError("rollout.max_staleness: online DPO rounds are synchronous; set it to 0")
    if cfg.rollout.autoscale is not None:
        raise ValueError("rollout.autoscale: DPO runs keep their rollout workers (RL runs scale them); remove it")


def learner_batches(cfg: Config) -> None:
    """Mini-batches split evenly over the ranks and into micro-batches; batches into mini-batches."""
    # DPO steps over pairs, not over a rollout batch
    batch = cfg.learner.mini_batch_size if cfg.algorithm.type == "dpo" else cfg.batch_size
    learner = cfg.learner
    per_rank = learner.mini_batch_size // learner.num_ranks
    if learner.mini_batch_size % learner.num_ranks:
        raise ValueError(
            f"learner.mini_batch_size ({learner.mini_batch_size}) must be a multiple of "
            f"learner.num_ranks ({learner.num_ranks})"
        )
    if per_rank % learner.micro_batch_size:
        raise ValueError(
            f"learner.mini_batch_size / learner.num_ranks ({per_rank}) must be a multiple of "
            f"learner.micro_batch_size ({learner.micro_batch_size})"
        )
    if batch % learner.mini_batch_size:
        raise ValueError(
            f"rollout.prompts_per_iteration x rollout.group_size ({batch}) must be a multiple "
            f"of learner.mini_batch_size ({learner.mini_batch_size})"
        )


def engine_devices(cfg: Config) -> None:
    """A tensor-parallel engine holds a device per shard; the HF teacher spreads by device_map."""
    for section, name in ((cfg.rollout, "rollout"), (cfg.teacher, "teacher")):
        tp = section.tensor_parallel_size
        if section.num_gpus and section.num_gpus < tp:
            raise ValueError(f"{name}.tensor_parallel_size={tp} needs {name}.num_gpus >= {tp} (one GPU per shard); "
                             f"it is {section.num_gpus}")
    if cfg.teacher.backend == "hf" and cfg.teacher.tensor_parallel_size > 1:
        raise ValueError("teacher.tensor_parallel_size is for teacher.backend=vllm; the hf backend spreads a big "
                         "teacher with teacher.device_map=auto")


def teacher_settings(cfg: Config) -> None:
    """The teacher's question template uses known slots; tempered scores need the HF backend."""
    try:
        cfg.teacher.question_template.format(question="", answer="", raw_question="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"teacher.question_template may only use {{question}}, {{raw_question}} and {{answer}} "
                         f"(write a literal brace as {{{{ or }}}}) ({exc!r})") from None
    if cfg.teacher.temperature != 1.0 and cfg.teacher.backend != "hf":
        raise ValueError("teacher.temperature other than 1 needs teacher.backend=hf "
                         "(vLLM's prompt log-probs are the raw, untempered ones)")


def critic_batches(cfg: Config) -> None:
    """PPO's critic splits the batch as the learner does, with its own sizes where set."""
    if cfg.algorithm.type != "ppo":
        return
    critic = cfg.critic_learner()
    if critic.mini_batch_size % critic.num_ranks or (critic.mini_batch_size // critic.num_ranks) % critic.micro_batch_size:
        raise ValueError(f"critic: mini_batch_size ({critic.mini_batch_size}) must be a multiple of critic.num_ranks "
                         f"({critic.num_ranks}) x micro_batch_size ({critic.micro_batch_size})")
    if cfg.batch_size % critic.mini_batch_size:
        raise ValueError(f"rollout.prompts_per_iteration x rollout.group_size ({cfg.batch_size}) must be a "
                         f"multiple of the critic's mini_batch_size ({critic.mini_batch_size})")


def groups_that_learn(cfg: Config) -> None:
    """GRPO and online DPO compare the samples of a group: a group of one learns nothing."""
    if cfg.rollout.group_size == 1 and cfg.algorithm.type == "grpo" and cfg.reward.combiner != "minillm":
        raise ValueError(
            "rollout.group_size=1: GRPO's advantage is a reward minus its group's mean, so with one "
            "sample per prompt every advantage is 0 and nothing is learned; use group_size >= 2")
    if cfg.algorithm.type == "dpo" and cfg.algorithm.online and cfg.rollout.group_size < 2:
        raise ValueError("online DPO pairs the best and worst answer of each group: rollout.group_size must be >= 2")


def teacher_rewards_have_teacher(cfg: Config) -> None:
    uses_teacher = cfg.reward.combiner == "minillm" or any(t.name in TEACHER_REWARDS for t in cfg.reward.terms)
    if uses_teacher and not cfg.teacher.path:
        raise ValueError("reward.combiner=minillm and the teacher_loglik reward need teacher.path")


def room_for_prompts(cfg: Config) -> None:
    if cfg.rollout.max_new_tokens >= cfg.model.max_model_len:
        raise ValueError(f"rollout.max_new_tokens ({cfg.rollout.max_new_tokens}) leaves no room for a prompt "
                         f"in model.max_model_len ({cfg.model.max_model_len})")


def data_path_given(cfg: Config) -> None:
    if cfg.data.source in ("gsm8k_jsonl", "datasets") and not cfg.data.path:
        raise ValueError(f"data.path is required when data.source is {cfg.data.source!r}")


RULES = (preference_run, learner_batches, engine_devices, teacher_settings, critic_batches, groups_that_learn,
         teacher_rewards_have_teacher, room_for_prompts, data_path_given)
