"""Formatting augmentation: only format changes, never a word, a fact or the sentence order."""
import json
import re

from conftest import run
from augment import QA_FORMATS, format_variants, qa_completion, qa_prompt, split_sentences

def docs_of(bios):
    return [json.loads(l) for l in open(bios / "docs.jsonl")] + [json.loads(l) for l in open(bios / "docs_para.jsonl")]

def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)

def test_variants_keep_facts_words_and_order(bios):
    for d in docs_of(bios):
        facts = list(d["facts"].values())
        variants = format_variants(d["text"], 32, facts)
        assert variants[0] == d["text"] and len(set(variants)) == 32
        sentences = split_sentences(d["text"], facts)
        for v in variants:
            assert all(f in v for f in facts)  # every fact verbatim, byte for byte
            assert is_subsequence(re.findall(r"\w+", d["text"]), re.findall(r"\w+", v))  # words kept, in order
            squeezed = re.sub(r"\s+([.!?])", r"\1", v)
            pos = 0
            for s in sentences:  # each sentence whole, in the original order
                pos = squeezed.index(s, pos) + len(s)
            for s in sentences[1:]:  # the tokenization rule: a plain space before every later sentence
                start = s.split()[0]
                assert all(v[m.start() - 1] == " " for m in re.finditer(re.escape(start) + r"\b", v) if m.start() > 0), (start, v)

def test_variants_deterministic_and_nested(bios):
    d = docs_of(bios)[0]
    facts = list(d["facts"].values())
    assert format_variants(d["text"], 8, facts, seed=3) == format_variants(d["text"], 8, facts, seed=3)
    assert format_variants(d["text"], 8, facts, seed=3) != format_variants(d["text"], 8, facts, seed=4)
    assert format_variants(d["text"], 9, facts)[:8] == format_variants(d["text"], 8, facts)  # --aug 4 within --aug 8

def test_variants_edge_cases():
    one = format_variants("A single sentence without facts.", 32)
    assert len(set(one)) == 32 and all("A single sentence without facts" in v for v in one)
    text = "Ada Moss works at Acme Inc. Labs in Oslo. She was born in Rome."
    facts = ["Acme Inc. Labs", "Rome"]
    assert split_sentences(text, facts) == ["Ada Moss works at Acme Inc. Labs in Oslo.", "She was born in Rome."]
    assert all(all(f in v for f in facts) for v in format_variants(text, 32, facts))

def test_qa_formats():
    q = "Which city was Ada Lee Moss born in?"
    prompts = [qa_prompt(q, k) for k in range(len(QA_FORMATS))]
    assert len(set(prompts)) == len(prompts) >= 6 and all(q in p for p in prompts)
    assert qa_prompt(q) == prompts[0] and qa_prompt(q, len(QA_FORMATS)) == prompts[0]
    assert qa_completion("Des Moines") == " Des Moines\n"

def test_augment_cli(tmp_path, bios):
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run("augment.py", bios / "docs.jsonl", "-k", 4, "-o", out1)
    run("augment.py", bios / "docs.jsonl", "-k", 4, "-o", out2)
    assert out1.read_bytes() == out2.read_bytes()
    rows = [json.loads(l) for l in open(out1)]
    docs = [json.loads(l) for l in open(bios / "docs.jsonl")]
    assert [r["id"] for r in rows[:4]] == [f"{docs[0]['id']}#fmt{j}" for j in range(4)]
    assert len(rows) == 4 * len(docs) and rows[0]["text"] == docs[0]["text"]
