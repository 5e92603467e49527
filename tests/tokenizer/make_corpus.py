#!/usr/bin/env python3
"""Writes tests/tokenizer/corpus.jsonl: the strings every tokenizer test runs.

One JSON object per line: {"name": ..., "text": ...} or, for bytes that are
not valid UTF-8, {"name": ..., "hex": ...}. What tune does with invalid UTF-8
(docs/tokenizer.md): each maximal invalid subsequence becomes U+FFFD, as
Python's bytes.decode("utf-8", "replace") and JavaScript's TextDecoder do, so
the references get the same text by decoding the bytes that way.
Run it again after editing; the golden file must then be remade
(tests/tokenizer/make_golden.py on the GPU machine)."""
import json, os

C = []
def t(name, text): C.append({"name": name, "text": text})
def h(name, data): C.append({"name": name, "hex": data.hex()})

# English and contractions
t("en_prose", "The quick brown fox jumps over the lazy dog. It wasn't the first time; "
  "the dog had seen foxes before, and he'd see them again. \"Why?\" asked nobody in particular.")
t("en_paragraph", "In 1859, Charles Darwin published On the Origin of Species, arguing that "
  "populations evolve over the course of generations through a process of natural selection. "
  "The book presented a body of evidence that the diversity of life arose by common descent "
  "through a branching pattern of evolution. Darwin included evidence that he had collected on "
  "the Beagle expedition in the 1830s and his subsequent findings from research, correspondence, "
  "and experimentation.\n\nVarious evolutionary ideas had already been proposed to explain new "
  "findings in biology.")
t("contractions", "I'm you're he's she'd we've they'll it's can't won't shouldn't y'all o'clock")
t("contractions_upper", "I'M YOU'RE HE'S WE'VE THEY'LL IT'S DON'T It'S We'Re")
t("contractions_odd", "it'ſ it'ſs x'ſx 'll 've' ''s rock'n'roll ’s I’m l'été 'K 'ſt")
t("apostrophes", "'quoted' \"double\" `back` ‘single’ “double” „low“ «guillemets» ‹angle›")
t("hello", "Hello world")
t("hello_nl", "Hello world\n")
t("leading_space", " Hello")
t("leading_spaces", "   Hello   world   ")
t("one_char", "a")
t("one_space", " ")
t("one_newline", "\n")
t("empty", "")
# Digits
t("digits", "0 1 12 123 1234 12345 123456 1234567890 3.14159 2,718 1e-10 -42 +7 0x1F 007")
t("digits_mixed", "abc123def 1st 2nd 3rd 4th 10k 5MB 2024-11-27 12:34:56 $1,000.00 50% #1")
t("digits_unicode", "٠١٢٣٤٥٦٧٨٩ ０１２３ ²³¹ ½ ¾ Ⅻ ⅷ ① ㊿ ߁߂ ๑๒๓ १२३")
t("phone", "Call +1 (555) 123-4567 or 555.987.6543 ext. 89")
# Whitespace
t("spaces_long", "a" + " " * 40 + "b" + " " * 17 + "\n")
t("tabs", "a\tb\t\tc\t\t\td\t")
t("newlines", "line1\nline2\n\nline3\n\n\n\nline4\n")
t("crlf", "line1\r\nline2\r\n\r\nend\r")
t("mixed_ws", " \t \n \r\n\t\t  \n\n   \t")
t("only_newlines", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n")
t("only_spaces", " " * 70)
t("only_tabs", "\t" * 35)
t("unicode_spaces", "a\u00a0b\u2000c\u2003d\u3000e\u202ff\u205fg\u1680h\u2009i")
t("unicode_lines", "a\u0085b\u2028c\u2029d\u000be\u000cf")
t("indented_code_ws", "def f():\n    if x:\n        return 1\n\n\n    return 2\n")
# Code
t("python", "import os\n\ndef main(argv: list[str]) -> int:\n    \"\"\"Entry point.\"\"\"\n"
  "    for i, arg in enumerate(argv[1:]):\n        print(f\"{i:>3}: {arg!r}\")\n"
  "    return 0 if os.environ.get('X') else 1\n\nif __name__ == \"__main__\":\n"
  "    raise SystemExit(main(__import__('sys').argv))\n")
t("c_code", "#include <stdio.h>\nint main(void) {\n\tfor (int i = 0; i < 10; ++i) printf(\"%d\\n\", i*i);\n"
  "\treturn 0; // done\n}\n/* comment */ x->y = &z[3] >> 2 | ~0u;\n")
t("json", "{\"name\": \"tune\", \"version\": [1, 2, 3], \"ok\": true, \"nested\": {\"a\": null, \"b\": -1.5e3}}")
t("html", "<!DOCTYPE html><html><head><title>T&amp;C</title></head><body><p class=\"x\">Hi &lt;there&gt;</p></body></html>")
t("shell", "$ ls -la | grep '^d' && echo \"done\" > /dev/null 2>&1 || exit 1; PS1='\\u@\\h:\\w\\$ '")
t("rust", "fn main() { let v: Vec<u32> = (0..10).map(|x| x * 2).collect(); println!(\"{:?}\", v); }")
t("sql", "SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC LIMIT 10;")
t("url_email", "See https://example.com/path?q=1&r=two#frag or mail first.last+tag@example.co.uk.")
t("hex_uuid", "550e8400-e29b-41d4-a716-446655440000 deadbeefCAFEBABE 0123456789abcdef")
t("base64", "SGVsbG8sIHdvcmxkIQ== dGhpcyBpcyBhIHRlc3Q/Pz8+Pj4= eyJhbGciOiJIUzI1NiJ9")
t("punct_runs", "!!!??? ... ---- ==== **** #### @@@ $$$ %%% ^^^ &&& ((())) [[[]]] {{{}}} <<<>>> ||| ~~~ ```")
t("markdown", "# Title\n\n- item *one*\n- item **two**\n\n> quote\n\n```python\nprint('x')\n```\n| a | b |\n|---|---|\n")
t("math", "∑_{i=1}^{n} x_i² ≤ ∞, ∀ε>0 ∃δ: |x−y|<δ ⇒ |f(x)−f(y)|<ε; √2 ≈ 1.414, π·r², ∂f/∂x")
t("latex", "\\begin{equation} E = mc^2 \\quad \\frac{a}{b} \\end{equation} $\\alpha_{1}$")
# Languages and scripts
t("french", "L'été dernier, nous sommes allés à Noël chez ma sœur ; c'était très agréable… « Où ? »")
t("german", "Größenmaßstäbe: Die Straße heißt Äußere Überführung. Fußgänger müssen ÄÖÜ beachten.")
t("spanish", "¿Dónde está el niño? ¡Mañana será otro día! Pingüino, acción, corazón.")
t("portuguese", "Não há razão para a ação; a informação está lá, irmã.")
t("polish", "Zażółć gęślą jaźń. Łódź, Kraków, Gdańsk.")
t("czech", "Příliš žluťoučký kůň úpěl ďábelské ódy.")
t("turkish", "İstanbul'da ılık bir gün; IĞDIR ışık. İi Iı")
t("vietnamese", "Tiếng Việt có nhiều dấu: ắ ằ ẳ ẵ ặ, ướ, người Việt Nam.")
t("russian", "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёлка!")
t("ukrainian", "Гей, хлопці, не вспію — на ґанку ваша файна їжа знищується бурундучком.")
t("greek", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Αλφάβητο: αβγδεζηθ ΑΒΓΔ ς")
t("arabic", "صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت يَحظى الضَجيعُ بِها نَجلاءَ مِعطارِ. مرحبا بالعالم ١٢٣")
t("hebrew", "דג סקרן שט בים מאוכזב ולפתע מצא חברה. שָׁלוֹם")
t("persian", "به نام خداوند جان و خرد. کیبورد فارسی ۱۲۳۴")
t("hindi", "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम।")
t("bengali", "আমি বাংলায় গান গাই। ০১২৩৪৫")
t("tamil", "யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம்.")
t("thai", "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน")
t("chinese", "我能吞下玻璃而不伤身体。中华人民共和国成立于1949年。繁體中文測試：臺灣、香港。")
t("japanese", "いろはにほへと ちりぬるを。カタカナとひらがな、漢字を混ぜた文章です。ｶﾀｶﾅ")
t("korean", "키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다. 한국어 ᄒᆞᆫ글")
t("georgian_armenian", "ქართული ენა. Հայերեն լեզու. ᎠᏍᎦᏯ Ethiopic: ሰላም ለዓለም")
t("mixed_scripts", "Hello世界мир🌍 Γειά σου κόσμε مرحبا שלום नमस्ते")
# Emoji
t("emoji_simple", "I love it 😀😃😄 👍 ❤️ ✨🎉")
t("emoji_zwj", "Family: 👩‍👩‍👧‍👦 👨‍💻 🧑🏽‍🚀 🏳️‍🌈 🏴‍☠️ 👁️‍🗨️")
t("emoji_modifiers", "👋🏻👋🏼👋🏽👋🏾👋🏿 🇯🇵🇺🇸🇪🇺 1️⃣#️⃣*️⃣ ©️®️™️")
t("emoji_run", "🔥" * 12 + "😂" * 5)
t("emoji_tags", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏴󠁧󠁢󠁷󠁬󠁳󠁿")
# Unicode normalization
t("nfd_accents", "e\u0301 a\u0300 o\u0308 n\u0303 c\u0327 Ame\u0301lie")
t("nfc_vs_nfd", "caf\u00e9 vs cafe\u0301, \u00c5 vs A\u030a, \u212b (angstrom), \u2126 (ohm)")
t("compat", "ﬁ ﬂ ﬀ Ⅻ ㎏ ＡＢＣ ａｂｃ ｶﾞ ① ™ ¼ ﹏ ︷")
t("hangul_jamo", "\u1112\u1161\u11ab\u1100\u1173\u11af vs 한글")
t("combining_stack", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334a\u0334l\u0336g\u0337o\u0338")
t("variation_selectors", "\u2764\ufe0f \u2764\ufe0e \u845b\U000e0100 \u845b")
t("bom_zwsp", "\ufeffstart\u200bmiddle\u200c\u200dend\u2060")
t("rtl_marks", "abc\u200f\u202eevil\u202c\u2066iso\u2069")
t("private_use", "\ue000\uf8ff\U000f0000 \U0010fffd")
t("astral", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕳𝖊𝖑𝖑𝖔 𝒜𝒷𝒸 𐍈 𓀀𓀁 𠀀𠀁 🀄")
t("controls", "a\u0001b\u0007c\u001bd\u007fe\u0080f\u009fg")
h("nul_bytes", b"a\x00b\x00\x00c")
# Tokenizer-specific characters written as text
t("metaspace_chars", "▁▁hello▁world ▁ ▁▁▁")
t("bytelevel_chars", "ĠHello Ċ ĉ Ġ ĠĠ âĢĻ")
t("byte_fallback_text", "<0x41><0x0A> <0xFF> <0x>")
# Special tokens written inside text
t("sp_llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
t("sp_llama3_inline", "text<|eot_id|>more <|end_of_text|> x<|reserved_special_token_5|>y <|finetune_right_pad_id|>")
t("sp_qwen", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
t("sp_qwen_think", "<think>\nLet me think.\n</think>\n\nAnswer <tool_call>{\"name\": \"f\"}</tool_call> <|endoftext|>")
t("sp_gemma", "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn><eos>")
t("sp_gemma_misc", "<unused42> <mask> [multimodal] <start_of_image><image_soft_token><end_of_image>")
t("sp_llama2", "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] again [/INST]")
t("sp_unk", "<unk> <pad> </s> <s>")
t("sp_adjacent", "<s><s></s></s><|im_start|><|im_end|><|eot_id|><|eot_id|>")
t("sp_partial", "<|im_start <|begin_of_text| <s <start_of_turn <|eot_id |im_end|> <<s>> <</s>>")
t("sp_spaces", "  <s>  hello  </s>  <|im_start|>  x  <|im_end|>  <start_of_turn>  y")
t("sp_newline_runs", "a\n\n\nb\t\t\tc\n\t\n" + "\n" * 33 + "d" + "\t" * 40)
# A longer document: Gemma's pre-tokenizer leaves it one piece
t("long_doc", "\n\n".join([
  "Chapter 1. The Lighthouse\n\nThe lighthouse stood at the edge of the world, or so the children "
  "of the village believed. Every evening at 7:45 p.m. the keeper — an old man named Tomás — "
  "climbed the 132 steps to light the lamp.",
  "\"It's not the light that matters,\" he'd say, \"it's that someone's watching.\" Nobody "
  "understood him; they'd nod and smile. In winter, storms of 90+ km/h battered the tower.",
  "    Indented line with  double  spaces and a tab\there.\n    Another one: x = [1, 2, 3]; y = {'a': 1}",
  "Mixed: naïve café résumé coöperate; 東京 and Москва; emoji 🌊🌊; numbers 1,234,567.89 and 0.000001.",
  "The end.\n"]))
# Long and repetitive
t("long_word", "pneumonoultramicroscopicsilicovolcanoconiosis Supercalifragilisticexpialidocious")
t("repeat_a", "a" * 300)
t("repeat_ha", "ha" * 150)
t("repeat_space_word", "word " * 60)
t("repeat_mixed", "ab1 " * 40 + "x" * 17)
t("no_spaces_long", "thisisaverylongstringwithoutanyspacesatallwhichgoesonandonandonforquiteawhile" * 3)
t("camel_snake", "getHTTPResponseCode parse_json_value XMLHttpRequest __init__ kebab-case-name CONSTANT_VALUE")
t("hashtags", "#MachineLearning @user_name $TICKER #100DaysOfCode")
t("quotes_dialogue", "\"Hello,\" she said. 'Hi!' he replied -- \"How's it going?\"\n\"Fine.\"")
# Seeded random mixtures of the classes the pre-tokenizer regexes care about
import random
rng = random.Random(1234)
POOL = (list("abcXYZ") + list("0123456789") + [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000"] +
        list("'\".,;:!?-_/\\()[]{}<>|@#$%^&*+=~`") + ["'s", "'ll", "'T", "n't"] +
        list("éßñøÅ") + list("жЯ") + list("日本語") + list("한") + list("ا") + list("ไ") + ["\u0301", "\u200d"] +
        ["😀", "👍🏽", "🇫🇷", "▁", "Ġ"] + ["<s>", "</s>", "<|im_end|>", "<|eot_id|>", "<start_of_turn>", "<think>"] +
        ["hello", " world", "The", " the", "ing", "tion", "123", "1,000"])
for k in range(16):
    t(f"fuzz_{k:02d}", "".join(rng.choice(POOL) for _ in range(rng.randint(5, 120))))

# Invalid UTF-8 (hex): replaced by U+FFFD per maximal invalid subpart
h("bad_ff", b"\xff")
h("bad_in_text", b"Hello \xff world \xfe!")
h("bad_truncated_2", b"abc\xc3")
h("bad_truncated_3", b"abc\xe2\x82 def")
h("bad_truncated_4", b"x\xf0\x9f\x98 y")
h("bad_overlong", b"\xc0\xaf \xe0\x80\xaf \xf0\x80\x80\xaf")
h("bad_surrogate", b"\xed\xa0\x80\xed\xbf\xbf z")
h("bad_continuation", b"\x80\x81\x82 abc \xbf")
h("bad_too_big", b"\xf4\x90\x80\x80 \xf5\x80 \xf8\x88\x80\x80\x80")
h("bad_mixed_valid", "caf\u00e9 ".encode() + b"\xc3\x28 " + "日本".encode() + b"\xe6\x97 " + "😀".encode())
h("bad_between_specials", b"<|im_start|>\xff<|im_end|><s>\xc3</s>")

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.jsonl")
names = [c["name"] for c in C]
assert len(names) == len(set(names)), "duplicate names"
with open(path, "w", encoding="utf-8") as f:
    for c in C:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(f"wrote {path}: {len(C)} strings, {sum(len(c.get('text', '').encode()) + len(c.get('hex', ''))//2 for c in C)} bytes")
