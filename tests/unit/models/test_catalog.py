import pytest

from rlsys.models.catalog import resolve_model
from rlsys.errors import ModelNotFoundError


def test_missing_model_path_says_so(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_hub_names_pass_through():
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_tiny_model_is_built_once_and_loads(tiny_model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert resolve_model("tiny-random") == tiny_model_path
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    assert model.config.hidden_size // model.config.num_attention_heads == 32  # vLLM CPU rejects 16
    text = tok.apply_chat_template([{"role": "user", "content": "1 + 2 ="}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
