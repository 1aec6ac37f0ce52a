"""Formatting augmentation: a variant only adds formatting, never changes a word, a fact or the order.

The checks below split the original into sentences on their own (not with augment.split_sentences), so a
bug there cannot hide itself."""
import json
import re

import pytest

from conftest import run
from augment import format_variants, qa_completion, qa_prompt

K = 32

def docs_of(bios):
    return [json.loads(l) for l in open(bios / "docs.jsonl")] + [json.loads(l) for l in open(bios / "docs_para.jsonl")]

def sentences_of(text):
    """Sentence split of a bios document (its facts hold no '.', so every '. ' ends a sentence)."""
    return re.split(r"(?<=[.!?]) ", text)

def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)

def check_variant(original, sentences, v, facts):
    """Every property a variant must have; returns nothing, asserts with the variant in the message."""
    for f in facts:  # every fact verbatim, byte for byte
        assert f in v, (f, v)
    assert is_subsequence(re.findall(r"\w+", original), re.findall(r"\w+", v)), v  # all words, in order
    squeezed = re.sub(r"\s+([.!?])", r"\1", v)
    pos = 0
    for s in sentences:  # each sentence whole (up to a space before its end mark), in the original order
        found = squeezed.find(s, pos)
        assert found >= 0, (s, v)
        pos = found + len(s)
    pos = 0
    for i, s in enumerate(sentences):  # the tokenization rule: a plain space before every sentence
        body = s.rstrip(".!?")
        start = v.find(body, pos)
        assert start >= 0, (body, v)
        spaced = start > 0 and v[start - 1] == " " or i == 0 and start == 0
        assert spaced, (s, repr(v[max(0, start - 12):start + 12]), v)
        pos = start + len(body)

def test_variants_of_every_bios_document(bios):
    docs = docs_of(bios)
    assert len(docs) == 90
    for d in docs:
        facts = list(d["facts"].values())
        variants = format_variants(d["text"], K, facts)
        assert len(variants) == K and variants[0] == d["text"]
        assert len(set(variants)) == K  # all distinct
        assert format_variants(d["text"], K, facts) == variants  # deterministic
        assert format_variants(d["text"], K + 1, facts)[:K] == variants  # nested: --aug 4 within --aug 8
        assert format_variants(d["text"], K, facts, seed=1) != variants  # the seed matters
        sentences = sentences_of(d["text"])
        assert len(sentences) == 6
        for v in variants:
            check_variant(d["text"], sentences, v, facts)
    # not trivial: the variants really differ in format (newlines, markers, wrappers) across a document's set
    variants = format_variants(docs[0]["text"], K, list(docs[0]["facts"].values()))
    assert sum("\n" in v for v in variants) >= 4
    # markers, wrappers
    assert sum(set(re.sub(r"\s", "", v)) != set(re.sub(r"\s", "", docs[0]["text"])) for v in variants) >= 8

def test_deterministic_seeded_and_nested(bios):
    d = docs_of(bios)[5]
    text, facts = d["text"], list(d["facts"].values())
    a = format_variants(text, 8, facts, seed=3)
    assert a == format_variants(text, 8, facts, seed=3)
    assert a != format_variants(text, 8, facts, seed=4) and a[0] == format_variants(text, 8, facts, seed=4)[0]
    for k in (1, 4, 8, 31):
        assert format_variants(text, k + 1, facts, seed=3)[:k] == format_variants(text, k, facts, seed=3)
    assert format_variants(text, 1, facts) == [text]

def test_document_without_facts():
    text = "The river was cold. Nobody swam that day! Was it worth it? Yes."
    for variants in (format_variants(text, K), format_variants(text, K, facts=[]), format_variants(text, K, (), 7)):
        assert len(set(variants)) == K and variants[0] == text
        for v in variants:
            check_variant(text, sentences_of(text), v, [])

def test_one_sentence_document():
    text = "Ada Lee Moss was born on July 9, 1950."
    variants = format_variants(text, K, ["July 9, 1950"])
    assert len(set(variants)) == K
    for v in variants:
        check_variant(text, [text], v, ["July 9, 1950"])

@pytest.mark.parametrize("text, facts", [
    ("Ada Moss works at Acme Inc. Labs in Oslo. She was born in Rome.", ["Acme Inc. Labs", "Rome"]),
    ("Ada Moss works at Acme Inc. Labs. She was born in Rome.", ["Acme Inc. Labs", "Rome"]),
    ("Ada Moss works at Acme Inc. She was born in Rome.", ["Acme Inc."]),
    ("She studied at St. Mary College. He was born in St. Louis.", ["St. Mary College", "St. Louis"]),
])
def test_a_fact_with_a_period_is_never_split(text, facts):
    variants = format_variants(text, K, facts)
    assert len(set(variants)) == K
    for v in variants:
        for f in facts:
            assert f in v, (f, v)
    # the sentence that holds a fact stays one sentence: no separator, marker or space lands after its "."
    sentences = re.split(r"(?<=\.) (?=She|He)", text)
    assert len(sentences) == 2
    for v in variants:
        check_variant(text, sentences, v, facts)

def test_qa_prompt_formats():
    q = "Which city was Ada Lee Moss born in?"
    prompts = [qa_prompt(q, k) for k in range(32)]
    assert len(set(prompts)) >= 6
    assert all(q in p for p in prompts)
    assert qa_prompt(q) == qa_prompt(q, 0) == prompts[0]
    assert all(p == qa_prompt(q, k) for k, p in enumerate(prompts))  # deterministic
    q2 = "Where was Dezső Ránki born?"
    assert all(q2 in qa_prompt(q2, k) for k in range(32))

@pytest.mark.parametrize("answer", ["Des Moines", "Halle (Saale)", "July 9, 1950", "São Paulo", "x"])
def test_qa_completion_keeps_the_answer(answer):
    assert qa_completion(answer) == " " + answer + "\n"
    for k in range(8):  # the answer follows any prompt untouched
        assert (qa_prompt("Q?", k) + qa_completion(answer)).endswith(" " + answer + "\n")

def test_cli_writes_k_variants_per_document_deterministically(tmp_path, bios):
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    res = run("augment.py", bios / "docs.jsonl", "-k", 4, "-o", out1)
    run("augment.py", bios / "docs.jsonl", "-k", 4, "-o", out2)
    assert out1.read_bytes() == out2.read_bytes()
    docs = [json.loads(l) for l in open(bios / "docs.jsonl")]
    rows = [json.loads(l) for l in open(out1)]
    assert len(rows) == 4 * len(docs) and str(out1) in res.stdout
    for i, d in enumerate(docs):
        group = rows[4 * i:4 * i + 4]
        assert [r["id"] for r in group] == [f"{d['id']}#fmt{j}" for j in range(4)]
        assert [r["text"] for r in group] == format_variants(d["text"], 4, list(d["facts"].values()), 0)
        assert all(r["facts"] == d["facts"] for r in group) and group[0]["text"] == d["text"]
    run("augment.py", bios / "docs.jsonl", "-k", 4, "--seed", 1, "-o", out2)
    assert out1.read_bytes() != out2.read_bytes()

def test_the_heldout_prompt_format_is_one_no_training_run_uses():
    from augment import HELDOUT_QA_FORMAT, QA_FORMATS, qa_prompt
    assert HELDOUT_QA_FORMAT not in QA_FORMATS  # --qa_aug K trains on QA_FORMATS[:K]
    prompt = qa_prompt("Which city was Ann born in?", "heldout")
    assert prompt == HELDOUT_QA_FORMAT.format(question="Which city was Ann born in?")
    assert all(prompt != qa_prompt("Which city was Ann born in?", k) for k in range(len(QA_FORMATS)))
