// decode_bench.mjs - llama.cpp's decode speed (node-llama-cpp's prebuilt CPU
// library) on a GGUF: the prompt ids evaluated, then N greedy tokens timed.
//   node bench/decode_bench.mjs MODEL.gguf THREADS N_TOKENS ID,ID,...
import {getLlama} from "node-llama-cpp";

const [path, threads, nTokens, idsText] = process.argv.slice(2);
const ids = idsText.split(",").map(Number);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error", progressLogs: false});
const model = await llama.loadModel({modelPath: path, gpuLayers: 0});
const context = await model.createContext({contextSize: 512, threads: Number(threads)});
const sequence = context.getSequence();
let n = 0, t0 = 0, tPrompt = 0;
const start = performance.now();
for await (const token of sequence.evaluate(ids, {temperature: 0})) {
    if (n === 0) { t0 = performance.now(); tPrompt = t0 - start; }
    if (++n >= Number(nTokens) + 1) break;
}
const t1 = performance.now();
console.log(JSON.stringify({prompt_tokens: ids.length, prompt_seconds: tPrompt / 1000, generated: n - 1,
                            decode_tokens_per_second: (n - 1) / ((t1 - t0) / 1000)}));
await context.dispose();
await model.dispose();
await llama.dispose();
