// llama.cpp side of `benches/run.py`: the same measurement as `cellm-run bench llm`,
// through libllama's C API (the build cached by scripts/make_llama_golden.sh).
// One untimed one-token decode first (first-touch page faults of the mapped
// weights, as cellm's --warmup 1). Per rep: clear the KV cache, prefill P random token ids in one batch, then N
// single-token steps feeding back the argmax. Reports the median prefill time and
// the median of the per-rep median step times.
//
// Usage: llama_bench MODEL.gguf PROMPT_TOKENS STEPS REPS THREADS
// Prints one human line per result and ends with one JSON object line.
#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static double now_s() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

static double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void quiet_log(enum ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT_TOKENS STEPS REPS THREADS\n", argv[0]);
        return 2;
    }
    const char * path = argv[1];
    const int n_prompt = std::atoi(argv[2]);
    const int n_steps = std::atoi(argv[3]);
    const int reps = std::atoi(argv[4]);
    const int threads = std::atoi(argv[5]);
    if (n_prompt < 1 || n_steps < 0 || reps < 1 || threads < 1) {
        fprintf(stderr, "PROMPT_TOKENS and REPS must be >= 1, STEPS >= 0, THREADS >= 1\n");
        return 2;
    }
    llama_log_set(quiet_log, nullptr);

    const double t_load = now_s();
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = [](float, void *) { return true; };  // no progress dots
    llama_model * model = llama_model_load_from_file(path, mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", path); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_steps + 16;
    // One prefill batch, as cellm runs the whole prompt through the graph at once.
    cp.n_batch = n_prompt;
    cp.n_ubatch = std::min(n_prompt, 512);
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.no_perf = true;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create context\n"); return 1; }
    const double load_s = now_s() - t_load;

    // Fixed LCG: the ids only need to be valid and not all equal.
    uint64_t state = 0x9E3779B97F4A7C15ull;
    std::vector<llama_token> prompt(n_prompt);
    for (auto & t : prompt) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        t = (llama_token) ((state >> 33) % (uint64_t) n_vocab);
    }

    if (llama_decode(ctx, llama_batch_get_one(prompt.data(), 1)) != 0) {
        fprintf(stderr, "warm-up decode failed\n");
        return 1;
    }
    llama_get_logits_ith(ctx, -1);

    std::vector<double> prefill, step_medians;
    for (int r = 0; r < reps; r++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        double t = now_s();
        if (llama_decode(ctx, llama_batch_get_one(prompt.data(), n_prompt)) != 0) {
            fprintf(stderr, "prefill decode failed\n");
            return 1;
        }
        const float * logits = llama_get_logits_ith(ctx, -1);  // waits for the graph
        prefill.push_back(now_s() - t);
        std::vector<double> steps;
        for (int i = 0; i < n_steps; i++) {
            llama_token next = (llama_token) (std::max_element(logits, logits + n_vocab) - logits);
            t = now_s();
            if (llama_decode(ctx, llama_batch_get_one(&next, 1)) != 0) {
                fprintf(stderr, "step decode failed\n");
                return 1;
            }
            logits = llama_get_logits_ith(ctx, -1);
            steps.push_back(now_s() - t);
        }
        step_medians.push_back(median(steps));
    }
    const double prefill_s = median(prefill);
    const double step_s = median(step_medians);
    printf("llama.cpp %s: load %.3f s, prefill %d tokens %.4f s (%.1f tok/s), decode %.2f ms/token "
           "(%.1f tok/s), %d threads, %d reps\n",
           path, load_s, n_prompt, prefill_s, n_prompt / prefill_s, step_s * 1e3,
           step_s > 0 ? 1.0 / step_s : 0.0, threads, reps);
    printf("{\"engine\":\"llama.cpp\",\"model\":\"%s\",\"threads\":%d,\"reps\":%d,\"load_s\":%.6f,"
           "\"prompt_tokens\":%d,\"steps\":%d,\"prefill_s\":%.6f,\"prefill_tok_s\":%.6f,"
           "\"decode_s_per_token\":%.6f,\"decode_tok_s\":%.6f}\n",
           path, threads, reps, load_s, n_prompt, n_steps, prefill_s, n_prompt / prefill_s, step_s,
           step_s > 0 ? 1.0 / step_s : 0.0);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
