// reference.mjs - reference ids from @lenml/tokenizers (a JavaScript port of
// Hugging Face's tokenizers) for every corpus string and tokenizer.
//
//   node tests/tokenizer/reference.mjs CORPUS.jsonl [NAME...] > ref.jsonl
//
// NAME is one of llama3 llama3_1 qwen3 gemma3 llama2 (default: all). Prints
// one line per tokenizer and string:
//   {"tok": NAME, "name": STRING_NAME, "ids": [...], "ids_no_special": [...]}
// Strings given as "hex" are decoded as tune decodes them: invalid UTF-8 ->
// U+FFFD per maximal invalid subpart (TextDecoder's replacement mode).
import { readFileSync } from "node:fs";

const ALL = ["llama3", "llama3_1", "qwen3", "gemma3", "llama2"];
const [corpusPath, ...names] = process.argv.slice(2);
if (!corpusPath) {
  console.error("usage: node reference.mjs CORPUS.jsonl [NAME...]");
  process.exit(2);
}
const corpus = readFileSync(corpusPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const decoder = new TextDecoder("utf-8", { fatal: false });
const text = (c) => (c.hex !== undefined ? decoder.decode(Buffer.from(c.hex, "hex")) : c.text);

for (const name of names.length ? names : ALL) {
  if (!ALL.includes(name)) {
    console.error(`unknown tokenizer ${name} (expected one of ${ALL.join(" ")})`);
    process.exit(2);
  }
  const mod = await import(`@lenml/tokenizer-${name}`);
  const tok = mod.fromPreTrained();
  for (const c of corpus) {
    const s = text(c);
    const ids = Array.from(tok.encode(s, { add_special_tokens: true }));
    const ids_no_special = Array.from(tok.encode(s, { add_special_tokens: false }));
    process.stdout.write(JSON.stringify({ tok: name, name: c.name, ids, ids_no_special }) + "\n");
  }
}
