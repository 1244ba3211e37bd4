// Greedy tokens and top-1/top-2 logits from llama.cpp's libllama, for cellm's
// golden files (scripts/make_llama_golden.sh builds and runs this).
// Usage: llama_golden MODEL.gguf N_PREDICT PROMPT_FILE
// Prints one JSON object: prompt_ids, generated_ids, top1_logits, top2_logits.
#include "llama.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf N_PREDICT PROMPT_FILE\n", argv[0]);
        return 2;
    }
    const int n_predict = std::stoi(argv[2]);
    std::ifstream in(argv[3], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string prompt = ss.str();

    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);

    // Special tokens written in the prompt are parsed; BOS is added only when the model asks for it.
    const bool add_bos = llama_vocab_get_add_bos(vocab);
    int n = -llama_tokenize(vocab, prompt.c_str(), (int) prompt.size(), nullptr, 0, add_bos, true);
    std::vector<llama_token> toks(n);
    if (llama_tokenize(vocab, prompt.c_str(), (int) prompt.size(), toks.data(), n, add_bos, true) < 0) {
        fprintf(stderr, "tokenize failed\n");
        return 1;
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 1024;
    cp.n_batch = 1024;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create context\n"); return 1; }

    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::vector<llama_token> out;
    std::vector<float> top1, top2;
    std::vector<llama_token> cur = toks;
    for (int i = 0; i < n_predict; i++) {
        llama_batch batch = llama_batch_get_one(cur.data(), (int) cur.size());
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        const float * logits = llama_get_logits_ith(ctx, -1);
        int best = 0;
        float b1 = -1e30f, b2 = -1e30f;
        for (int t = 0; t < n_vocab; t++) {
            if (logits[t] > b1) { b2 = b1; b1 = logits[t]; best = t; }
            else if (logits[t] > b2) { b2 = logits[t]; }
        }
        out.push_back(best);
        top1.push_back(b1);
        top2.push_back(b2);
        if (llama_vocab_is_eog(vocab, best)) break;
        cur.assign(1, best);
    }

    auto ids = [](const std::vector<llama_token> & v) {
        std::string s = "[";
        for (size_t i = 0; i < v.size(); i++) s += (i ? "," : "") + std::to_string(v[i]);
        return s + "]";
    };
    auto floats = [](const std::vector<float> & v) {
        std::string s = "[";
        char buf[64];
        for (size_t i = 0; i < v.size(); i++) {
            snprintf(buf, sizeof buf, "%s%.6f", i ? "," : "", v[i]);
            s += buf;
        }
        return s + "]";
    };
    printf("{\"prompt_ids\":%s,\"generated_ids\":%s,\"top1_logits\":%s,\"top2_logits\":%s}\n",
           ids(toks).c_str(), ids(out).c_str(), floats(top1).c_str(), floats(top2).c_str());
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
