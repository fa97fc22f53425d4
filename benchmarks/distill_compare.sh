#!/usr/bin/env bash
# The distillation comparison of the README, on one budget (configs/demo/distill.yaml: 10
# iterations of 8 prompts x 8 samples, the same teacher, lr and steps): per-token reverse-KL
# rewards (MiniLLM, gamma 0) against the teacher's sequence log-likelihood, each with GRPO
# and with PPO, and MiniLLM with L_PT. SEEDS seeds each (default "0"; the demo's own row
# comes from `rlsys seeds` with three); VARIANTS picks rows. fp32, as on the AVX2 kind.
# Prints the table last.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-0}
OUT=${OUT:-runs/distill_compare}
[ -x .venv/bin/rlsys ] || ./run.sh --help >/dev/null
[ -f runs/teacher_chain_sum/config.json ] || .venv/bin/rlsys make-teacher configs/demo/distill.yaml --out runs/teacher_chain_sum
BASE=(configs/demo/distill.yaml model.dtype=float32 teacher.dtype=float32 tracking.console=false)
LL=("reward.combiner=linear" "reward.terms=[{name: teacher_loglik, weight: 1.0, kwargs: {normalize: mean}}, {name: correctness, weight: 0.0}]")
LPT=(lpt.coef=0.1 lpt.source=reasoning_gym:in_the_year_2889.txt)
PPO=("algorithm={type: ppo, old_policy: sampler, clip_eps: 0.2, gamma: 1.0, lam: 0.95, kl_in_reward: 0.0, kl_beta: 0.0, whiten_advantages: true, loss_agg: token_mean}"
     "critic={num_ranks: 1, zero_stage: 0, lr: 3.0e-5, warmup_iterations: 1, value_clip: 0.2, mini_batch_size: 16, micro_batch_size: 16, epochs: 1}")
VARIANTS=${VARIANTS:-grpo_minillm grpo_teacher_ll grpo_minillm_lpt ppo_minillm ppo_teacher_ll}
run() {
  local name=$1; shift
  [[ " $VARIANTS " == *" $name "* ]] || return 0
  .venv/bin/rlsys seeds "${BASE[@]}" "$@" --seeds $SEEDS --out "$OUT/$name" > "$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
run grpo_minillm
run grpo_teacher_ll "${LL[@]}"
run grpo_minillm_lpt "${LPT[@]}"
run ppo_minillm "${PPO[@]}"
run ppo_teacher_ll "${PPO[@]}" "${LL[@]}"
.venv/bin/python benchmarks/seed_table.py "$OUT"/*/seeds.json | tee "$OUT/table.md"
