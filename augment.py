"""
Formatting-based augmentation (Zhu et al., arXiv 2503.03705): copies of a document that differ only in
format (sentence separators, bullets, numbering, characters around sentences, document wrappers, spaces
before punctuation), never in wording, facts, casing or sentence order. Standalone: standard library only.

    python augment.py data/bios/docs.jsonl -k 8 -o /tmp/docs_aug.jsonl    # ids ID#fmt0 .. ID#fmt7
    python augment.py docs.jsonl -k 32 --seed 1 -o docs_aug32.jsonl

    from augment import format_variants, qa_prompt
    format_variants(text, k=8, facts=["July 9, 1950"])   # variant 0 is the original text
    qa_prompt("Where was Ada born?", fmt=3)               # prompt formats for instruction tuning

Tokenization rule kept by every format: the character before each sentence is a plain space (openers
like "- ", "[ " and "1. " end with one). Byte-level BPE tokenizes " Anna" and "\nAnna" differently, so
without this a name at the start of a line would get other tokens than the same name in a question, and
a "format effect" would be a tokenization artefact. Facts never touch a format: a sentence boundary
inside a fact is not used, and a variant that would alter a fact is dropped.
"""
import argparse
import hashlib
import json
import os
import random
import re
import sys

# format families; each entry ends with a space where a sentence follows it
SEPARATORS = [" ", "  ", "\n", "\n\n", " \n"]  # between sentences (space, newline, blank line)
MARKERS = ["", "- ", "* ", "• ", "+ ", "{i}. ", "{i}) ", "({i}) ", "[{i}] ", "#{i} "]  # bullets, numbering
AROUND = [("", ""), ("[ ", "]"), ("( ", ")"), ('" ', '"'), ("** ", "**"), ("* ", "*"), ("{ ", "}"), ("| ", " |")]
WRAPPERS = [("", ""), ("Document:\n", ""), ("# Document\n", ""), ("<doc>\n", "\n</doc>"), ("---\n", "\n---"),
            ("```\n", "\n```"), ("Text:", ""), ("BEGIN\n", "\nEND"), ("<p>", "</p>"), ("Text: ", "")]
SPACE_BEFORE_PUNCT = [False, True]  # "Paris." -> "Paris ." (only at a sentence end, never inside a fact)

QA_FORMATS = [  # prompt formats for a question; the answer follows as " ANSWER\n" (qa_completion)
    "Question: {question}\nAnswer:",
    "Q: {question}\nA:",
    "{question}\nAnswer:",
    "Answer the following question.\nQuestion: {question}\nAnswer:",
    "### Question\n{question}\n### Answer:",
    "Q: {question} A:",
    "Question: {question}\n\nAnswer:",
    "Please answer: {question}\nThe answer is:",
]

# a format no training run uses (--qa_aug K takes QA_FORMATS' first K): do prompt formats generalize to a new one?
HELDOUT_QA_FORMAT = "Query: {question}\nReply:"

def qa_prompt(question, fmt=0):
    """The prompt for a question in format `fmt` (0 is the canonical one probe.py and eval.py use; "heldout" the one
    no training run uses)."""
    return (HELDOUT_QA_FORMAT if fmt == "heldout" else QA_FORMATS[fmt % len(QA_FORMATS)]).format(question=question)

def qa_completion(answer):
    """What the model learns to produce after a prompt: the answer, then a newline that ends it."""
    return " " + answer + "\n"

def split_sentences(text, facts=()):
    """Sentences with the whitespace after each; never splits inside a fact."""
    spans = [(m.start(), m.end()) for f in facts for m in re.finditer(re.escape(f), text)]
    cuts = [m for m in re.finditer(r"(?<=[.!?])\s+", text) if not any(a < m.start() < b for a, b in spans)]
    pieces, start = [], 0
    for m in cuts:
        pieces.append(text[start:m.start()])
        start = m.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]

def render(sentences, sep, marker, around, wrapper, space_punct, facts=()):
    lines = []
    for i, s in enumerate(sentences, 1):
        if space_punct and s[-1] in ".!?" and not any(s.endswith(f) for f in facts):
            s = s[:-1] + " " + s[-1]
        opener = marker.format(i=i) + around[0]  # non-empty openers end with a space
        before = wrapper[0] if i == 1 else sep
        if not opener and before and not before.endswith(" "):
            opener = " "  # "\n Anna", not "\nAnna" (see the tokenization rule)
        lines.append(opener + s + around[1])
    return wrapper[0] + sep.join(lines) + wrapper[1]

def format_variants(text, k, facts=(), seed=0):
    """k distinct formattings of text; variant 0 is text itself. Deterministic per (text, k, seed), and
    the first k of k+1 variants are the k variants (so --aug 4 is a subset of --aug 8)."""
    facts = [f for f in facts if f]
    sentences = split_sentences(text, facts)
    key = hashlib.sha256(f"{seed}\0{text}".encode()).hexdigest()
    rng = random.Random(key)
    out, seen, tries = [text], {text}, 0
    while len(out) < k:
        tries += 1
        if tries > 100 * k + 1000:
            raise ValueError(f"could not make {k} distinct formats of: {text[:60]!r}")
        v = render(sentences, rng.choice(SEPARATORS), rng.choice(MARKERS), rng.choice(AROUND),
                   rng.choice(WRAPPERS), rng.choice(SPACE_BEFORE_PUNCT), facts)
        if v not in seen and all(f in v for f in facts):  # a fact must survive byte for byte
            seen.add(v)
            out.append(v)
    return out

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="documents JSONL ({'id', 'text', 'facts'?} per line)")
    parser.add_argument("-k", type=int, default=8, help="variants per document (variant 0 is the original)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the format choice")
    parser.add_argument("-o", "--output", required=True, help="output JSONL (written atomically)")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("-k must be at least 1")
    rows = []
    try:
        with open(args.input, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{args.input}:{lineno}"
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{where}: invalid JSON ({e.msg})") from None
                if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or not doc["text"].strip():
                    raise ValueError(f"{where}: needs a non-empty string 'text'")
                facts = doc.get("facts") or {}
                if not isinstance(facts, dict) or any(not isinstance(v, str) or v not in doc["text"]
                                                      for v in facts.values()):
                    raise ValueError(f"{where}: 'facts' must map names to strings that occur in the text")
                doc_id = str(doc.get("id", lineno))
                for j, v in enumerate(format_variants(doc["text"], args.k, list(facts.values()), args.seed)):
                    rows.append({**doc, "id": f"{doc_id}#fmt{j}", "text": v})
    except (OSError, ValueError) as e:
        print(f"augment.py: {e}", file=sys.stderr)
        sys.exit(2)
    if not rows:
        print(f"augment.py: {args.input}: empty file", file=sys.stderr)
        sys.exit(2)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, args.output)
    print(f"wrote {len(rows)} variants of {len(rows) // args.k} documents to {args.output}")

if __name__ == "__main__":
    main()
