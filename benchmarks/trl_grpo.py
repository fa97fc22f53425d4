"""TRL's GRPOTrainer on the work of rlsys_chain_sum.yaml, timed per optimiser step. Runs in
its own environment (compare_trl.sh installs TRL there; TRL is not an rlsys dependency).
Prints one JSON object: the seconds of every step and the mean reward of each."""

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

SYSTEM = ("You are a careful calculator. Work out the arithmetic problem and finish your reply with the final "
          "answer as a single number.")


def correctness(completions, answer, **_):
    """1 when the reply's last number equals the answer (rlsys's `correctness` reward)."""
    out = []
    for completion, want in zip(completions, answer):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        numbers = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
        out.append(1.0 if numbers and float(numbers[-1]) == float(want) else 0.0)
    return out


def fp32_copy(model: str, out: Path) -> Path:
    """The model folder with its config saying float32, so TRL's colocated vLLM engine (which
    takes the dtype from the config) runs in fp32 like the trainer; weights are linked."""
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(model).iterdir():
        target = out / f.name
        if f.name == "config.json":
            cfg = json.loads(f.read_text())
            cfg["dtype"] = cfg["torch_dtype"] = "float32"
            target.write_text(json.dumps(cfg))
        elif not target.exists():
            target.symlink_to(f.resolve())
    return out


def main() -> None:
    import reasoning_gym
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", default="runs/perf_trl")
    ap.add_argument("--vllm", choices=["auto", "yes", "no"], default="auto")
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the CPU build ignores GPU memory shares
    use_vllm = args.vllm == "yes"
    if args.vllm == "auto":
        try:
            import vllm  # noqa: F401
            use_vllm = True
        except ImportError:
            use_vllm = False

    model = fp32_copy(args.model, Path(args.out) / "model-fp32")
    tasks = reasoning_gym.create_dataset("chain_sum", size=2000, seed=0, min_terms=2, max_terms=3,
                                         min_digits=1, max_digits=2)
    rows = [{"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": t["question"]}],
             "answer": str(t["answer"])} for t in tasks]
    config = GRPOConfig(
        output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=64, num_generations=8,
        gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=1, max_completion_length=64,
        beta=0.1, temperature=1.0, learning_rate=1e-5, lr_scheduler_type="constant", warmup_steps=0,
        bf16=False, fp16=False, use_cpu=True, model_init_kwargs={"dtype": "float32"}, use_vllm=use_vllm, vllm_mode="colocate", logging_steps=1,
        report_to=[], save_strategy="no", seed=0, dataloader_num_workers=0)

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.times, self.started = [], None

        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.times.append(time.perf_counter() - self.started)

    timer = StepTimes()
    trainer = GRPOTrainer(model=str(model), reward_funcs=correctness, args=config,
                          train_dataset=Dataset.from_list(rows), callbacks=[timer])
    started = time.perf_counter()
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    print(json.dumps({"trainer": "trl", "vllm": use_vllm, "step_seconds": timer.times,
                      "median_step_seconds": statistics.median(timer.times[1:] or timer.times),
                      "wall_seconds": time.perf_counter() - started, "reward": rewards}))


if __name__ == "__main__":
    main()
