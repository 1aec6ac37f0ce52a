"""The biography world (prepare.py) and the one JSONL reader (data/__init__.py)."""
import json
import os
import re
from collections import defaultdict

import pytest

from conftest import ROOT, run
from data import DataError, file_kind, read_docs, read_examples, read_qa

RELATIONS = ["birth_date", "birth_city", "university", "major", "employer", "employer_city"]

def lines(path):
    return [json.loads(l) for l in open(path)]

def test_prepare_is_deterministic(tmp_path):
    for d in ("a", "b", "c"):
        run("data/bios/prepare.py", "--people", 40, "--seed", 1 if d != "c" else 2, "--paraphrases", 2, "--out_dir", tmp_path / d)
    for f in ("docs.jsonl", "qa.jsonl", "docs_para.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
        assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes()

def test_world_shape(bios):
    docs, qa = lines(bios / "docs.jsonl"), lines(bios / "qa.jsonl")
    names = {it["question"] for it in qa}
    assert len(docs) == 30 and len(qa) == 6 * 30
    by_doc = defaultdict(list)
    for it in qa:
        by_doc[it["doc_id"]].append(it)
    for d in docs:
        assert sorted(it["relation"] for it in by_doc[d["id"]]) == sorted(RELATIONS)
        assert sorted(d["facts"]) == sorted(RELATIONS)
        for it in by_doc[d["id"]]:
            assert d["facts"][it["relation"]] == it["answer"]
            assert it["answer"] in d["text"]  # every fact is stated in the document
        name = re.match(r"(\w+ \w+ \w+)", d["text"]).group(1)  # first, middle, last
        assert all(name in it["question"] for it in by_doc[d["id"]])
    full_names = [re.match(r"(\w+ \w+ \w+)", d["text"]).group(1) for d in docs]
    assert len(set(full_names)) == len(full_names) and len(names) == len(qa)
    splits = [it["split"] for it in qa if it["relation"] == "major"]
    assert splits.count("train") >= 12 and splits.count("dev") >= 2 and splits.count("test") >= 12

def test_answers_unambiguous_and_employer_fixes_city(tmp_path):
    run("data/bios/prepare.py", "--people", 1500, "--out_dir", tmp_path)
    qa = lines(tmp_path / "qa.jsonl")
    for rel in RELATIONS:
        answers = {it["answer"].lower() for it in qa if it["relation"] == rel}
        assert len(answers) > 20
        for a in answers:  # exact match must be unambiguous: no answer inside another of the same relation
            assert not any(a != b and a in b for b in answers), (rel, a)
    city_of = {}
    by_doc = defaultdict(dict)
    for it in qa:
        by_doc[it["doc_id"]][it["relation"]] = it["answer"]
    for facts in by_doc.values():
        assert city_of.setdefault(facts["employer"], facts["employer_city"]) == facts["employer_city"]

def test_paraphrases(bios):
    docs = {d["id"]: d for d in lines(bios / "docs.jsonl")}
    para = lines(bios / "docs_para.jsonl")
    assert len(para) == 2 * len(docs)
    for p in para:
        base = docs[p["id"].split("#")[0]]
        assert p["facts"] == base["facts"] and p["text"] != base["text"]
        assert all(v in p["text"] for v in p["facts"].values())

# -----------------------------------------------------------------------------
# the reader

def write(path, *rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)

@pytest.mark.parametrize("rows, reader, message", [
    (['{"text": "ok"}', '{"text": '], read_docs, r":2: invalid JSON"),
    (['[1, 2]'], read_docs, r":1: expected a JSON object"),
    ([{"id": "a"}], read_docs, r":1: 'text' must be a non-empty string \(missing\)"),
    ([{"text": "  "}], read_docs, r":1: 'text' must be a non-empty string"),
    ([{"text": "Ada was born in Paris.", "facts": {"birth_city": "Rome"}}], read_docs, r":1: fact birth_city='Rome' does not occur"),
    ([{"text": "x", "facts": ["Rome"]}], read_docs, r":1: 'facts' must map"),
    ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], read_docs, r":2: duplicate id 'a' \(first on line 1\)"),
    ([{"answer": "Paris"}], read_qa, r":1: 'question' must be a non-empty string \(missing\)"),
    ([{"question": "Where?"}], read_qa, r":1: needs 'answer'"),
    ([{"question": "Where?", "answers": []}], read_qa, r":1: needs 'answer'"),
    ([{"question": "Where?", "answer": 3}], read_qa, r":1: needs 'answer'"),
    ([{"question": "Where?", "answer": "P", "relation": 5}], read_qa, r":1: 'relation' must be a non-empty string"),
    ([{"question": "Q1", "answer": "a", "id": 1}, {"question": "Q2", "answer": "b", "id": "1"}], read_qa, r":2: duplicate id '1'"),
])
def test_reader_errors(tmp_path, rows, reader, message):
    path = write(tmp_path / "bad.jsonl", *rows)
    with pytest.raises(DataError, match=re.escape(path) + message):
        reader(path)

def test_reader_empty_missing_and_split(tmp_path):
    empty = write(tmp_path / "empty.jsonl", "", "  ")
    with pytest.raises(DataError, match=re.escape(empty) + ": empty file"):
        read_qa(empty)
    with pytest.raises(DataError, match="no such file"):
        read_docs(str(tmp_path / "nope.jsonl"))
    qa = write(tmp_path / "qa.jsonl", {"question": "Q1", "answer": "a", "split": "train"})
    with pytest.raises(DataError, match=r"no QA items with split 'test'"):
        read_qa(qa, "test")
    with pytest.raises(DataError, match=r":1: neither a document"):
        file_kind(write(tmp_path / "odd.jsonl", {"foo": 1}))

def test_reader_defaults(tmp_path):
    path = write(tmp_path / "P19.dev.jsonl", {"question": "Where was Ada born?", "answers": ["London", "City of London"]},
                 {"question": "Where was Bo born?", "answer": "Oslo", "id": "b", "relation": "P19x"})
    a, b = read_qa(path)
    assert a["id"] == "1" and a["relation"] == "P19" and a["answer"] == "London" and a["answers"] == ["London", "City of London"]
    assert b["id"] == "b" and b["relation"] == "P19x" and b["answers"] == ["Oslo"]
    assert len(read_qa(path, "test")) == 2  # a file without splits is used whole
    assert read_examples(path)[0] == "qa"
    docs = write(tmp_path / "d.jsonl", {"text": "Ada was born in London."})
    assert read_examples(docs) == ("docs", [{"text": "Ada was born in London.", "id": "1", "facts": {}}])

def test_reader_real_entityquestions():
    path = os.path.join(ROOT, "..", "shared", "data", "entityquestions", "P19.dev.jsonl")
    if not os.path.exists(path):
        pytest.skip("no EntityQuestions sample here")
    items = read_qa(path)
    assert items and all(it["relation"] == "P19" and it["answers"] for it in items)
    assert any(len(it["answers"]) > 1 or "(" in it["answer"] for it in items)

def test_augment_cli_rejects_bad_input(tmp_path):
    bad = write(tmp_path / "bad.jsonl", {"text": "fine."}, '{"text": 1')
    res = run("augment.py", bad, "-k", 2, "-o", tmp_path / "out.jsonl", check=False)
    assert res.returncode == 2 and f"{bad}:2:" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()
