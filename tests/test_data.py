"""The biography world (data/bios/prepare.py) and the one JSONL reader (data/__init__.py)."""
import json
import os
import re
from collections import Counter, defaultdict

import pytest

from conftest import run
from data import DataError, file_kind, read_docs, read_examples, read_qa

RELATIONS = ["birth_date", "birth_city", "university", "major", "employer", "employer_city"]
NAME_OF = re.compile(r"What is the birth date of (.+)\?$")  # the birth_date question names the person

def lines(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]

@pytest.fixture(scope="module")
def big_world(tmp_path_factory):
    """4000 people: enough for name collisions to be likely if the script did not prevent them, and for the
    pools of every relation to be used widely."""
    d = tmp_path_factory.mktemp("big_world")
    run("data/bios/prepare.py", "--people", 4000, "--seed", 3, "--out_dir", d)
    return d

def names_by_doc(qa):
    out = {}
    for it in qa:
        if it["relation"] == "birth_date":
            out[it["doc_id"]] = NAME_OF.match(it["question"]).group(1)
    return out

# -----------------------------------------------------------------------------
# prepare.py

def test_prepare_same_seed_same_bytes_other_seed_differs(tmp_path):
    for d, seed in (("a", 1), ("b", 1), ("c", 2)):
        run("data/bios/prepare.py", "--people", 40, "--seed", seed, "--paraphrases", 2, "--out_dir", tmp_path / d)
    for f in ("docs.jsonl", "qa.jsonl", "docs_para.jsonl"):
        a, b, c = ((tmp_path / d / f).read_bytes() for d in "abc")
        assert a and a == b, f
        assert a != c, f

def test_six_qa_per_person_with_the_six_relations(bios):
    docs, qa = lines(bios / "docs.jsonl"), lines(bios / "qa.jsonl")
    assert len(docs) == 30 and len({d["id"] for d in docs}) == 30
    by_doc = defaultdict(list)
    for it in qa:
        by_doc[it["doc_id"]].append(it)
    assert set(by_doc) == {d["id"] for d in docs}
    for d in docs:
        items = by_doc[d["id"]]
        assert sorted(it["relation"] for it in items) == sorted(RELATIONS), d["id"]
        assert sorted(d["facts"]) == sorted(RELATIONS)
        assert len({it["split"] for it in items}) == 1  # a person is in one split
        for it in items:
            assert it["answer"] == d["facts"][it["relation"]]
    assert len({it["id"] for it in qa}) == len(qa)

def test_splits_about_45_10_45(bios, tmp_path):
    splits = Counter(it["split"] for it in lines(bios / "qa.jsonl") if it["relation"] == "major")
    assert set(splits) == {"train", "dev", "test"}
    run("data/bios/prepare.py", "--people", 200, "--out_dir", tmp_path)
    splits = Counter(it["split"] for it in lines(tmp_path / "qa.jsonl") if it["relation"] == "major")
    assert sum(splits.values()) == 200
    for name, frac in (("train", 0.45), ("dev", 0.10), ("test", 0.45)):
        assert abs(splits[name] / 200 - frac) <= 0.02, splits

def test_full_names_unique_first_middle_last(big_world):
    docs, qa = lines(big_world / "docs.jsonl"), lines(big_world / "qa.jsonl")
    names = names_by_doc(qa)
    assert len(names) == len(docs) == 4000
    for d in docs:
        name = names[d["id"]]
        assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+ [A-Z][a-z]+", name), name  # first middle last
        assert d["text"].startswith(name)  # the document names the person first
    assert len(set(names.values())) == len(names), Counter(names.values()).most_common(3)
    for it in qa:  # every question names its person
        assert names[it["doc_id"]] in it["question"]

def test_no_answer_is_a_substring_of_another_of_its_relation(big_world):
    qa = lines(big_world / "qa.jsonl")
    for rel in RELATIONS:
        answers = sorted({it["answer"].lower() for it in qa if it["relation"] == rel})
        assert len(answers) > 20, rel
        clashes = [(a, b) for a in answers for b in answers if a != b and a in b]
        assert not clashes, (rel, clashes[:5])

def test_every_fact_occurs_in_its_document_and_employer_fixes_city(big_world):
    docs = lines(big_world / "docs.jsonl")
    city_of = {}
    for d in docs:
        assert sorted(d["facts"]) == sorted(RELATIONS)
        for rel, value in d["facts"].items():
            assert value and value in d["text"], (d["id"], rel, value)
        employer, city = d["facts"]["employer"], d["facts"]["employer_city"]
        assert city_of.setdefault(employer, city) == city, (employer, city_of[employer], city)
    assert len(city_of) > 50  # many employers are shared, so the check above compared something
    assert sum(Counter(d["facts"]["employer"] for d in docs).values()) > len(city_of)
    date = re.compile(r"(January|February|March|April|May|June|July|August|September|October|November|December)"
                      r" ([1-9]|1\d|2[0-8]), (19\d\d|20\d\d)")
    assert all(date.fullmatch(d["facts"]["birth_date"]) for d in docs)

def normalized_sentences(text, name):
    """Sentences with the person's name and pronouns replaced, so only the template is left."""
    text = text.replace(name + "'s", "POSS").replace(name, "SUBJ")
    text = re.sub(r"\b(His|Her)\b", "POSS", re.sub(r"\b(He|She)\b", "SUBJ", text))
    return set(re.split(r"(?<=\.) ", text))

def test_paraphrases(bios):
    docs = {d["id"]: d for d in lines(bios / "docs.jsonl")}
    names = names_by_doc(lines(bios / "qa.jsonl"))
    para = lines(bios / "docs_para.jsonl")
    assert len(para) == 2 * len(docs)  # --paraphrases 2
    assert Counter(p["id"].split("#")[0] for p in para) == {i: 2 for i in docs}
    first_is_birth_date = 0
    for p in para:
        base = docs[p["id"].split("#")[0]]
        assert p["facts"] == base["facts"]
        for value in p["facts"].values():
            assert value in p["text"], (p["id"], value)
        canonical = normalized_sentences(base["text"], names[base["id"]])
        rewritten = normalized_sentences(p["text"], names[base["id"]])
        assert len(rewritten) == 6 and not canonical & rewritten, (base["text"], p["text"])
        first_is_birth_date += p["facts"]["birth_date"] in re.split(r"(?<=\.) ", p["text"])[0]
    assert first_is_birth_date < len(para) / 2  # the sentence order is shuffled (1/6 expected)

# -----------------------------------------------------------------------------
# the reader

def write(path, *rows):
    """A JSONL file from dicts (json.dumps) and raw strings (written as they are)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return str(path)

DOC = {"text": "Ada was born in Paris."}
QA = {"question": "Where was Ada born?", "answer": "Paris"}

@pytest.mark.parametrize("rows, reader, line, needle", [
    ([DOC, '{"text": "Bo was'], read_docs, 2, "invalid JSON"),
    ([QA, QA | {"id": "x"}, "not json at all"], read_qa, 3, "invalid JSON"),
    ([DOC, "[1, 2]"], read_docs, 2, "object"),
    (['"just a string"'], read_qa, 1, "object"),
    ([DOC, {"id": "b"}], read_docs, 2, "text"),
    ([{"text": "   "}], read_docs, 1, "text"),
    ([{"text": 7}], read_docs, 1, "text"),
    ([QA, {"answer": "Paris"}], read_qa, 2, "question"),
    ([{"question": "", "answer": "Paris"}], read_qa, 1, "question"),
    ([{"question": "Where?"}], read_qa, 1, "answer"),
    ([{"question": "Where?", "answer": ""}], read_qa, 1, "answer"),
    ([{"question": "Where?", "answers": []}], read_qa, 1, "answer"),
    ([{"question": "Where?", "answer": 3}], read_qa, 1, "answer"),
    ([{"question": "Where?", "answers": ["Paris", 3]}], read_qa, 1, "answer"),
    ([{"question": "Where?", "answers": "Paris"}], read_qa, 1, "answer"),
    ([DOC, {"text": "Ada was born in Paris.", "facts": {"birth_city": "Rome"}}], read_docs, 2, "Rome"),
    ([{"text": "Ada was born in Paris.", "facts": {"birth_city": "paris"}}], read_docs, 1, "paris"),  # case matters
])
def test_reader_errors_name_file_and_line(tmp_path, rows, reader, line, needle):
    path = write(tmp_path / "bad.jsonl", *rows)
    with pytest.raises(DataError) as e:
        reader(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert needle in msg, msg
    assert "\n" not in msg  # one line

@pytest.mark.parametrize("reader, row", [(read_docs, DOC), (read_qa, QA)])
def test_duplicate_ids_name_both_lines(tmp_path, reader, row):
    path = write(tmp_path / "dup.jsonl", row | {"id": "a"}, row | {"id": "b"}, "", row | {"id": "a"})
    with pytest.raises(DataError) as e:
        reader(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:4: ") and re.search(r"\b1\b", msg[len(path) + 3:]), msg
    # an integer id and the same id as a string are the same id (ids are strings)
    path = write(tmp_path / "dup2.jsonl", row | {"id": 7}, row | {"id": "7"})
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ")):
        reader(path)
    # a default id (the line number) clashes with an explicit one too
    path = write(tmp_path / "dup3.jsonl", row | {"id": "2"}, row)
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ")):
        reader(path)

@pytest.mark.parametrize("reader", [read_docs, read_qa, read_examples, file_kind])
def test_empty_and_missing_files(tmp_path, reader):
    empty = write(tmp_path / "empty.jsonl", "", "   ")
    with pytest.raises(DataError) as e:
        reader(empty)
    assert str(e.value).startswith(f"{empty}: ") and "empty" in str(e.value)
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(DataError) as e:
        reader(missing)
    assert str(e.value).startswith(f"{missing}: ")

def test_split_with_no_items(tmp_path):
    path = write(tmp_path / "qa.jsonl", QA | {"split": "train"}, QA | {"id": "b", "split": "dev"})
    assert [it["split"] for it in read_qa(path, "dev")] == ["dev"]
    assert len(read_qa(path)) == 2  # no split asked: everything
    with pytest.raises(DataError) as e:
        read_qa(path, "test")
    assert str(e.value).startswith(f"{path}: ") and "test" in str(e.value)

def test_answers_list_and_answer_filled(tmp_path):
    path = write(tmp_path / "qa.jsonl", {"question": "Q1", "answers": ["London", "City of London"]},
                 {"question": "Q2", "answer": "Oslo"})
    a, b = read_qa(path)
    assert a["answers"] == ["London", "City of London"] and a["answer"] == "London"
    assert b["answers"] == ["Oslo"] and b["answer"] == "Oslo"

def test_defaults_id_and_relation(tmp_path):
    path = write(tmp_path / "P19.dev.jsonl", "", QA, QA | {"id": "b", "relation": "born_in"}, QA)
    a, b, c = read_qa(path)
    # the line number (blank lines count), the name before the first dot
    assert (a["id"], a["relation"]) == ("2", "P19")
    assert (b["id"], b["relation"]) == ("b", "born_in")
    assert (c["id"], c["relation"]) == ("4", "P19")
    assert read_qa(write(tmp_path / "capitals.jsonl", QA))[0]["relation"] == "capitals"
    docs = read_docs(write(tmp_path / "d.jsonl", DOC, DOC | {"id": 5}))
    assert [d["id"] for d in docs] == ["1", "5"] and docs[0]["facts"] == {}

def test_file_without_splits_is_used_whole(tmp_path):
    path = write(tmp_path / "P36.jsonl", QA, QA | {"id": "b"}, QA | {"id": "c"})
    for split in (None, "train", "dev", "test"):
        assert [it["id"] for it in read_qa(path, split)] == ["1", "b", "c"]
        assert [it["id"] for it in read_examples(path, split)[1]] == ["1", "b", "c"]

def test_file_kind_and_read_examples(tmp_path, bios):
    assert file_kind(str(bios / "docs.jsonl")) == "docs" and file_kind(str(bios / "qa.jsonl")) == "qa"
    kind, items = read_examples(str(bios / "qa.jsonl"), "dev")
    assert kind == "qa" and items and all(it["split"] == "dev" for it in items)
    kind, docs = read_examples(str(bios / "docs.jsonl"))
    assert kind == "docs" and len(docs) == 30 and all(set(d["facts"]) == set(RELATIONS) for d in docs)
    odd = write(tmp_path / "odd.jsonl", {"foo": 1})
    with pytest.raises(DataError) as e:
        file_kind(odd)
    assert str(e.value).startswith(f"{odd}:1: ")

def eq_lines(relation, split, n):
    """The first n lines of a relation's split in the EntityQuestions release archive named by EQ_ARCHIVE (CI sets it);
    the test skips where there is none."""
    import zipfile
    if not os.path.isfile(os.environ.get("EQ_ARCHIVE", "")):
        pytest.skip("no EntityQuestions archive (set EQ_ARCHIVE to the release's dataset.zip)")
    text = zipfile.ZipFile(os.environ["EQ_ARCHIVE"]).read(f"dataset/{split}/{relation}.{split}.jsonl").decode("utf-8")
    return [l + "\n" for l in text.splitlines() if l.strip()][:n]

def test_reader_accepts_real_entityquestions(tmp_path):
    path = tmp_path / "P19.dev.jsonl"  # the release's own lines: no id, no relation, unicode, several answers
    path.write_text("".join(eq_lines("P19", "dev", 40)), encoding="utf-8")
    path = str(path)
    n_lines = sum(1 for l in open(path, encoding="utf-8") if l.strip())
    items = read_qa(path)
    assert len(items) == n_lines and file_kind(path) == "qa"
    assert all(it["relation"] == "P19" and it["answers"] and it["answer"] == it["answers"][0] for it in items)
    assert len({it["id"] for it in items}) == len(items)
    assert any(not it["question"].isascii() for it in items)  # UTF-8 read as UTF-8

def test_augment_cli_rejects_bad_input(tmp_path):
    bad = write(tmp_path / "bad.jsonl", {"text": "Fine. Really."}, '{"text": 1')
    out = tmp_path / "out.jsonl"
    res = run("augment.py", bad, "-k", 2, "-o", out, check=False)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(err) == 1 and f"{bad}:2:" in err[0], res.stderr
    assert not out.exists() and not any(p.name.startswith("out.jsonl") for p in tmp_path.iterdir())
    for rows, line in (([{"text": "ok."}, {"text": "x", "facts": {"a": "y"}}], 2), ([{"id": "a"}], 1)):
        bad = write(tmp_path / "bad2.jsonl", *rows)
        res = run("augment.py", bad, "-k", 2, "-o", out, check=False)
        assert res.returncode == 2 and f"{bad}:{line}:" in res.stderr and not out.exists(), res.stderr

# -----------------------------------------------------------------------------
# data/entityquestions/prepare.py on a small archive in the release's layout (offline)

def release_archive(path):
    """A zip laid out as the EntityQuestions release (dataset/{train,dev,test}/P<id>.<split>.jsonl, plus a
    one-off folder that must be left out), from the real release's dev lines where EQ_ARCHIVE names it."""
    import zipfile
    lines = {}
    for rel in ("P19", "P36"):
        try:
            lines[rel] = eq_lines(rel, "dev", 40)
        except pytest.skip.Exception:
            lines[rel] = [json.dumps({"question": f"Where was Dezs\u0151 {i} born?",
                                      "answers": [f"Halle (Saale) {i}", "Halle"]}, ensure_ascii=False) + "\n"
                          for i in range(12)]
    with zipfile.ZipFile(path, "w") as z:
        for rel, ls in lines.items():  # the samples' lines spread over the three splits
            for k, split in enumerate(("train", "dev", "test")):
                z.writestr(f"dataset/{split}/{rel}.{split}.jsonl", "".join(ls[k::3]))
        z.writestr("dataset/one-off/common-random-buckets/P19/bucket1.test.jsonl", lines["P19"][0])
    return lines

def test_entityquestions_prepare_converts_the_release_layout(tmp_path):
    archive = tmp_path / "dataset.zip"
    lines = release_archive(archive)
    out = tmp_path / "qa.jsonl"
    res = run("data/entityquestions/prepare.py", "--archive", archive, "--out", out)
    assert "wrote" in res.stdout
    items = read_qa(str(out))
    assert len(items) == sum(len(ls) for ls in lines.values())  # every line once; the one-off set left out
    assert {it["relation"] for it in items} == {"P19", "P36"}
    assert {it["split"] for it in items} == {"train", "dev", "test"}
    originals = {(json.loads(l)["question"], tuple(json.loads(l)["answers"])) for ls in lines.values() for l in ls}
    assert {(it["question"], tuple(it["answers"])) for it in items} == originals  # unicode, several answers kept
    assert len(read_qa(str(out), "test")) == sum(len(ls[2::3]) for ls in lines.values())
    # the download path, from a URL (file:// here), a subset of relations, and a seeded cap per split; the download is
    # kept in --cache and read from there next time (the URL is not asked again)
    out2, cache = tmp_path / "qa_p19.jsonl", tmp_path / "cache" / "dataset.zip"
    run("data/entityquestions/prepare.py", "--url", archive.as_uri(), "--cache", cache, "--relations", "P19",
        "--max_per_split", 3, "--out", out2)
    p19 = read_qa(str(out2))
    assert {it["relation"] for it in p19} == {"P19"}
    assert Counter(it["split"] for it in p19) == {"train": 3, "dev": 3, "test": 3}
    assert cache.read_bytes() == archive.read_bytes()
    gone = (tmp_path / "gone.zip").as_uri()
    run("data/entityquestions/prepare.py", "--url", gone, "--cache", cache, "--relations", "P19", "--max_per_split", 3,
        "--out", tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == out2.read_bytes()
    # no archive, nothing cached and no download: one line that says how to get the file, nothing written
    res = run("data/entityquestions/prepare.py", "--url", gone, "--cache", tmp_path / "none.zip",
              "--out", tmp_path / "no.jsonl", check=False)
    assert res.returncode == 2 and "--archive PATH" in res.stderr.splitlines()[-1]
    assert not (tmp_path / "no.jsonl").exists()

def test_entityquestions_prepare_bad_archive_is_one_line_and_nothing_written(tmp_path):
    bad = tmp_path / "dataset.zip"
    bad.write_bytes(b"not a zip")
    out = tmp_path / "qa.jsonl"
    res = run("data/entityquestions/prepare.py", "--archive", bad, "--out", out, check=False)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and str(bad) in res.stderr
    assert not out.exists()
    import zipfile
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("dataset/dev/P19.dev.jsonl", '{"question": "Where?", "answers": ["A"]}\n{"question": "Where?"\n')
    res = run("data/entityquestions/prepare.py", "--archive", bad, "--out", out, check=False)
    assert res.returncode == 2 and "P19.dev.jsonl:2" in res.stderr and not out.exists()

# -----------------------------------------------------------------------------
# tiers.py (the pretrained regime's world)

TIER_FILES = ("pretrain", "qa_known", "new_docs", "new_para", "new_para_heldout", "qa_new", "qa_slick", "qa_tiers")

@pytest.fixture(scope="module")
def tiers(tmp_path_factory):
    """200 known, 150 long-tail (50 each at exposure 1 / 2 / 4) and 100 new people."""
    d = tmp_path_factory.mktemp("tiers")
    run("data/bios/tiers.py", "--known", 200, "--longtail", 150, "--new", 100, "--seed", 5, "--out_dir", d)
    return {name: lines(d / f"{name}.jsonl") for name in TIER_FILES}

def test_tiers_same_seed_same_bytes_other_seed_differs(tmp_path):
    for d, seed in (("a", 1), ("b", 1), ("c", 2)):
        run("data/bios/tiers.py", "--known", 12, "--longtail", 9, "--new", 6, "--seed", seed, "--out_dir", tmp_path / d)
    for name in TIER_FILES:
        a, b, c = ((tmp_path / d / f"{name}.jsonl").read_bytes() for d in "abc")
        assert a and a == b, name
        assert a != c, name

def test_tiers_disjoint_with_their_exposures(tiers):
    def person(doc_id):  # p00012.3 and p00012#para1 are p00012
        return doc_id.split("#")[0].split(".")[0]
    copies = Counter(person(d["id"]) for d in tiers["pretrain"])
    tier_of = {it["doc_id"]: it["tier"] for it in tiers["qa_tiers"]}
    assert Counter(tier_of.values()) == {"known": 200, "longtail_1": 50, "longtail_2": 50, "longtail_4": 50, "new": 100}
    for pid, n in copies.items():  # known: canonical + 4 paraphrases; long-tail: its exposure
        assert n == (5 if tier_of[pid] == "known" else int(tier_of[pid].split("_")[1])), (pid, n)
    new = {pid for pid, t in tier_of.items() if t == "new"}
    assert set(copies) == set(tier_of) - new  # every known and long-tail person is pretrained on, no new one
    assert {d["id"] for d in tiers["new_docs"]} == new
    assert {person(d["id"]) for d in tiers["new_para"]} == {person(d["id"]) for d in tiers["new_para_heldout"]} == new
    assert {it["doc_id"] for it in tiers["qa_known"]} == {pid for pid, t in tier_of.items() if t == "known"}
    assert {it["doc_id"] for it in tiers["qa_new"]} == new
    slick = {it["doc_id"] for it in tiers["qa_slick"]}  # the long-tail people and the known test people
    known_test = {it["doc_id"] for it in tiers["qa_known"] if it["split"] == "test"}
    assert slick == {pid for pid, t in tier_of.items() if t.startswith("longtail")} | known_test
    assert all(it["tier"] in ("known", "longtail_1", "longtail_2", "longtail_4") for it in tiers["qa_slick"])
    names = {pid: NAME_OF.match(it["question"]).group(1) for pid, it in
             ((it["doc_id"], it) for it in tiers["qa_tiers"] if it["relation"] == "birth_date")}
    assert len(set(names.values())) == len(names) == 450  # names unique over all tiers
    pretrain_text = "\n".join(d["text"] for d in tiers["pretrain"])
    assert not [pid for pid in new if names[pid] in pretrain_text]  # no new person leaks into pretraining

def test_tiers_facts_in_every_document_and_answers_unambiguous(tiers):
    answer = {(it["doc_id"], it["relation"]): it["answer"] for it in tiers["qa_tiers"]}
    for name in ("pretrain", "new_docs", "new_para", "new_para_heldout"):
        for d in tiers[name]:
            pid = d["id"].split("#")[0].split(".")[0]
            assert sorted(d["facts"]) == sorted(RELATIONS)
            for rel, value in d["facts"].items():
                assert value == answer[(pid, rel)] and value in d["text"], (name, d["id"], rel)
    for rel in RELATIONS:
        answers = sorted({a.lower() for (_, r), a in answer.items() if r == rel})
        assert not [(a, b) for a in answers for b in answers if a != b and a in b], rel
    para = {d["id"]: d["text"] for d in tiers["new_para"] + tiers["new_para_heldout"]}
    for d in tiers["new_docs"]:  # 4 trained and 4 held-out paraphrases, none the canonical text
        ids = [f"{d['id']}#para{j}" for j in range(8)]
        assert all(i in para and para[i] != d["text"] for i in ids), d["id"]
        assert {i for i in ids[:4]} <= {x["id"] for x in tiers["new_para"]}

def test_tiers_splits_by_person(tiers):
    for name, n, fractions in (("qa_known", 200, (0.45, 0.10, 0.45)), ("qa_new", 100, (0.45, 0.10, 0.45)),
                               ("qa_slick", 150 + 90, (0.50, 0.10, 0.40))):
        split_of = defaultdict(set)
        for it in tiers[name]:
            split_of[it["doc_id"]].add(it["split"])
        assert len(split_of) == n and all(len(s) == 1 for s in split_of.values()), name  # a person is in one split
        counts = Counter(s.pop() for s in split_of.values())
        for split, frac in zip(("train", "dev", "test"), fractions):
            assert abs(counts[split] / n - frac) <= 0.02, (name, counts)
    known_split = {it["doc_id"]: it["split"] for it in tiers["qa_known"]}
    for it in tiers["qa_tiers"]:  # the split column of qa_tiers is the tier (known people: by their split)
        assert it["split"] == (f"known_{known_split[it['doc_id']]}" if it["tier"] == "known" else it["tier"])
    kinds = Counter(it["tier"] for it in tiers["qa_slick"] if it["split"] == "test")
    assert len(kinds) == 4  # long-tail tiers and known people are interleaved in every split

def test_tiers_rejects_too_few_people(tmp_path):
    res = run("data/bios/tiers.py", "--known", 2, "--out_dir", tmp_path / "w", check=False)
    assert res.returncode == 2 and "at least 3 people" in res.stderr
    assert not (tmp_path / "w").exists()
