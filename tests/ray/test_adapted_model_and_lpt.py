"""A tokenizer-adapted (resized) tiny model trains with the L_PT term mixed in and syncs to a
real vLLM engine. The gradient the learner applies (its norm, and the sign of every update)
is checked against one computed independently with transformers' forward and LM loss."""

from pathlib import Path

import pytest
import torch

from rlsys.config import Config
from rlsys.distributed.groups import ActorGroup
from rlsys.distributed.weight_push import push_weights
from rlsys.records import TrainItem

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
        "algorithm": {"kl_beta": 0.0},
        "lpt": {"coef": coef, "source": text, "block_tokens": 32, "sequences_per_micro_batch": 2},
        "sync": {"bucket_mb": 0.05, "timeout_s": 20},
    })


def _independent_gradient(model_path, items, blocks, coef):
    """The gradient of L = -(1/N) sum_i A_i sum_t log p(y_it) + coef * (LM(b0,b1) + LM(b2,b3)) / 2
    at the initial weights (ratio 1, no KL), computed with transformers' own forward and loss:
    what one optimiser step of the learner must apply (two micro-batches of two blocks each)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    n_tokens = sum(len(it.completion_ids) for it in items)
    loss = torch.zeros(())
    for it in items:
        ids = torch.tensor([it.prompt_ids + it.completion_ids])
        logp = torch.log_softmax(model(ids).logits[0], dim=-1)
        start = len(it.prompt_ids)
        tok = sum(logp[start - 1 + j, t] for j, t in enumerate(it.completion_ids))
        loss = loss - it.advantage * tok / n_tokens
    if coef:
        lm = [model(input_ids=torch.tensor(blocks[i : i + 2]), labels=torch.tensor(blocks[i : i + 2])).loss
              for i in (0, 2)]
        loss = loss + coef * (lm[0] + lm[1]) / 2
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_lpt_gradient_is_the_one_applied_and_the_resized_model_syncs(local_ray, adapted, tmp_path):
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
    blocks = token_blocks(load_texts(text), tok, 32)

    plain = start_learners(_cfg(model_path, text, 0.0), model_path, 10)[0]
    mixed = start_learners(_cfg(model_path, text, 0.5), model_path, 10)[0]
    s0, s1 = local_ray.get([plain.train_on_batch.remote(items), mixed.train_on_batch.remote(items)])
    local_ray.kill(plain)
    local_ray.get(mixed.save.remote(str(tmp_path / "after"), "float32"))
    for stats, coef in ((s0, 0.0), (s1, 0.5)):
        grads = _independent_gradient(model_path, items, blocks, coef)
        norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())))
        assert stats["train/grad_norm"] == pytest.approx(norm, rel=1e-3), coef
    assert s1["train/grad_norm"] != pytest.approx(s0["train/grad_norm"], rel=1e-2)  # L_PT really adds a term
    # The L_PT value itself: the LM loss of the first four blocks, by transformers.
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    with torch.no_grad():
        hf = [float(model(input_ids=torch.tensor(blocks[i : i + 2]), labels=torch.tensor(blocks[i : i + 2])).loss)
              for i in (0, 2)]
    assert s1["train/lpt_loss"] == pytest.approx(sum(hf) / 2, abs=1e-4)
    # Adam's first step moves each weight by -lr * g / (|g| + eps): its sign is the sign of
    # the mixed gradient computed independently above, for every weight with a real gradient.
    after = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "after", dtype=torch.float32).named_parameters())
    before = dict(model.named_parameters())
    grads = _independent_gradient(model_path, items, blocks, 0.5)
    checked = 0
    for name, g in grads.items():
        sure = g.abs() > 1e-5
        moved = (after[name] - before[name]).detach()
        assert torch.equal(torch.sign(moved[sure]), -torch.sign(g[sure])), name
        checked += int(sure.sum())
    assert checked > 10_000

    # The resized model trains, then syncs to a vLLM engine that loaded the same folder.
    cfg = _cfg(model_path, text, 0.5)
    rollout = start_rollout_workers(cfg, model_path)[0]
    local_ray.get(rollout.ping.remote())  # the engine is up before the group's join timeout starts
    host, port = local_ray.get(mixed.sync_endpoint.remote())
    local_ray.get([mixed.init_sync_group.remote("gloo", host, port, 2, 20.0),
                   rollout.init_sync_group.remote("gloo", host, port, 1, 2, 20.0)])
    keys = local_ray.get(rollout.weight_keys.remote())
    push_weights(ActorGroup([mixed], ["learner-0"]), ActorGroup([rollout], ["rollout-0"]), cfg.sync, "float32", 1, keys)
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
