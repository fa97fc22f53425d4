"""A tokenizer-adapted (resized) tiny model trains with the L_PT term mixed in and syncs to a
real vLLM engine; L_PT changes the learner's loss by exactly coef x the LM loss."""

from pathlib import Path

import pytest
import torch

from rlsys.config import Config
from rlsys.workers.learner import TrainItem

pytestmark = pytest.mark.ray

WORDS = Path(__file__).resolve().parents[1] / "data" / "faroese_words.txt"
TEXT = ("Tað var einaferð ein bátur í fjørðinum. Fólkið í býnum sá bátin og gekk niður til sjóvar. "
        "Veðrið var gott, og børnini spældu við vatnið. ") * 6


@pytest.fixture(scope="module")
def adapted(tiny_model_path, tmp_path_factory):
    from rlsys.models.tokenizers import adapt_model, read_words

    root = tmp_path_factory.mktemp("adapted")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    result = adapt_model(tiny_model_path, read_words(WORDS), num_tokens=24, out_dir=root / "model")
    assert result.new_tokens
    return str(root / "model"), str(root / "text.txt")


def _cfg(model_path: str, text: str, coef: float) -> Config:
    return Config.model_validate({
        "model": {"path": model_path, "dtype": "float32", "max_model_len": 256},
        "rollout": {"kv_cache_gib": 0.25, "prompts_per_iteration": 1, "group_size": 4},
        "learner": {"mini_batch_size": 4, "micro_batch_size": 2, "lr": 1e-3, "epochs": 1},
        "grpo": {"kl_beta": 0.0},
        "lpt": {"coef": coef, "source": text, "block_tokens": 32, "sequences_per_micro_batch": 2},
        "sync": {"bucket_mb": 0.05, "timeout_s": 20},
    })


def test_lpt_adds_exactly_its_weighted_term_and_the_resized_model_syncs(local_ray, adapted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.data.text import load_texts, token_blocks
    from rlsys.distributed.actors import start_learners, start_rollout_workers

    model_path, text = adapted
    tok = AutoTokenizer.from_pretrained(model_path)
    ids = tok("fjørðinum við bátin", add_special_tokens=False).input_ids
    base_vocab = 1024
    assert any(i >= base_vocab for i in ids)  # the adapted tokenizer uses its new entries
    items = [TrainItem(ids[:2], ids[2:] + [7, 8], 1.0), TrainItem(ids[:2], [30, 31, 32], -1.0),
             TrainItem([4, 5], [base_vocab, 11, 12], 1.0), TrainItem([4, 5], [40, 41], -1.0)]

    plain = start_learners(_cfg(model_path, text, 0.0), model_path, 10)[0]
    mixed = start_learners(_cfg(model_path, text, 0.5), model_path, 10)[0]
    s0, s1 = local_ray.get([plain.train_on_batch.remote(items), mixed.train_on_batch.remote(items)])
    local_ray.kill(plain)
    # Same weights, same batch: the policy part is identical, -sum(A * tokens) / tokens.
    assert s0["train/policy_loss"] == pytest.approx(s1["train/policy_loss"], abs=1e-6)
    # At the first step the ratio is 1, so the loss is -sum(A_i * n_i) / sum(n_i) over all completion tokens.
    lengths = [len(it.completion_ids) for it in items]
    expected = -sum(it.advantage * n for it, n in zip(items, lengths)) / sum(lengths)
    assert s0["train/policy_loss"] == pytest.approx(expected, abs=1e-4)
    assert "train/lpt_loss" not in s0 and s0["train/loss"] == s0["train/policy_loss"]
    assert s1["train/loss"] - s0["train/loss"] == pytest.approx(0.5 * s1["train/lpt_loss"], abs=1e-6)
    # The LM loss is the plain next-token loss of the first four text blocks (two micro-batches
    # of two, before the optimizer step), computed here independently with transformers.
    blocks = token_blocks(load_texts(text), tok, 32)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    with torch.no_grad():
        hf = [float(model(input_ids=torch.tensor(blocks[i : i + 2]), labels=torch.tensor(blocks[i : i + 2])).loss)
              for i in (0, 2)]
    assert s1["train/lpt_loss"] == pytest.approx(sum(hf) / 2, abs=1e-4)

    # The resized model trains, then syncs to a vLLM engine that loaded the same folder.
    cfg = _cfg(model_path, text, 0.5)
    rollout = start_rollout_workers(cfg, model_path)[0]
    local_ray.get(rollout.ping.remote())  # the engine is up before the group's join timeout starts
    host, port = local_ray.get(mixed.sync_endpoint.remote())
    local_ray.get([mixed.init_sync_group.remote("gloo", host, port, 2, 20.0),
                   rollout.init_sync_group.remote("gloo", host, port, 1, 2, 20.0)])
    plan = local_ray.get(mixed.weight_plan.remote(cfg.sync.bucket_mb, "float32", 1))
    local_ray.get([mixed.broadcast_weights.remote(plan), rollout.receive_weights.remote(plan)])
    engine = local_ray.get(rollout.checksums.remote())
    learner = local_ray.get(mixed.checksums.remote("float32"))
    embed = engine["model.embed_tokens.weight"]
    assert embed == pytest.approx(learner["model.embed_tokens.weight"], rel=1e-9)
    for key, value in engine.items():
        assert value == pytest.approx(tuple(sum(learner[p][j] for p in key.split("+")) for j in (0, 1)), rel=1e-9), key
    samples = local_ray.get(rollout.generate.remote([ids], [1.0, 1.0], 8, 1.0, 0))
    assert len(samples) == 2 and all(s.weight_version == 1 for s in samples)
    local_ray.kill(rollout)
    local_ray.kill(mixed)
