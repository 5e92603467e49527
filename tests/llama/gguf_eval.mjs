// gguf_eval.mjs - llama.cpp's side of the GGUF comparisons: loads GGUF files
// in node-llama-cpp (llama.cpp's prebuilt CPU library), evaluates a fixed
// token sequence teacher-forced and prints the next-token probabilities at
// every position, then greedy-decodes N tokens from the same sequence.
//
//   node tests/llama/gguf_eval.mjs JOBS.json > OUT.json
//
// JOBS.json: {"runs": [{"name", "model": "x.gguf", "lora"?: "a.gguf",
//              "ids": [...], "greedy"?: 16, "texts"?: [...]}]}
// OUT.json:  {"runs": [{"name", "n_vocab", "probs": [[p_0 .. p_{V-1}] per
//              position], "greedy": [ids], "tokens": [[ids] per text]}]}
// "tokens": llama.cpp's tokenizer on each text, special tokens recognised
// and none added (Hugging Face's add_special_tokens=False).
// The KV cache is kept in F32 (llama.cpp's default is F16) so that an f32
// export can be held to fp32 agreement.
// Probabilities: softmax of the raw logits (greedy sampling: no temperature,
// penalty or bias), as node-llama-cpp's addon computes them.
import {readFileSync} from "node:fs";
import {getLlama} from "node-llama-cpp";

const jobs = JSON.parse(readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", progressLogs: false});
const out = {runs: []};
const greedyOptions = {temperature: 0, yieldEogToken: true};

for (const job of jobs.runs) {
    const model = await llama.loadModel({modelPath: job.model, gpuLayers: 0});
    const context = await model.createContext({
        contextSize: Math.max(64, job.ids.length + (job.greedy ?? 0) + 8),
        threads: 1,
        // fp32 keys and values: the comparison is about the file, not about
        // llama.cpp's default F16 cache
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
        flashAttention: false,
        ...(job.lora ? {lora: {adapters: [{filePath: job.lora, scale: 1}]}} : {})
    });
    const nVocab = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    const sequence = context.getSequence();
    // Teacher-forced: one token at a time, each step fed the true next token.
    const probs = [];
    const it = sequence.evaluateWithMetadata([job.ids[0]], {probabilities: true}, greedyOptions);
    for (let i = 0; i < job.ids.length; i++) {
        const r = i === 0 ? await it.next() : await it.next(job.ids[i]);
        if (r.done) throw new Error(`${job.name}: evaluation stopped at position ${i}`);
        const row = new Array(nVocab).fill(0);
        for (const [token, p] of r.value.probabilities) row[token] = p;
        probs.push(row);
    }
    await it.return();
    // Greedy continuation from a clean state.
    const greedy = [];
    if (job.greedy) {
        await sequence.clearHistory();
        for await (const token of sequence.evaluate(job.ids, greedyOptions)) {
            greedy.push(token);
            if (greedy.length >= job.greedy) break;
        }
    }
    const tokens = (job.texts ?? []).map((text) => Array.from(model.tokenize(text, true)));
    out.runs.push({name: job.name, n_vocab: nVocab, probs, greedy, tokens});
    await context.dispose();
    await model.dispose();
}
process.stdout.write(JSON.stringify(out));
await llama.dispose();
