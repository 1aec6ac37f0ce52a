"""probe.py (SliCK categories) and gradual.py (two stages, report, resume)."""
import json
import os
import shutil
from collections import Counter

import pytest

import probe
from conftest import run

CATS = ["HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"]

@pytest.mark.parametrize("p_greedy, p_sample, expected", [
    (1.0, 0.0, "HighlyKnown"), (1.0, 1.0, "HighlyKnown"), (0.9, 0.0, "MaybeKnown"), (0.1, 1.0, "MaybeKnown"),
    (0.0, 1 / 160, "WeaklyKnown"), (0.0, 1.0, "WeaklyKnown"), (0.0, 0.0, "Unknown")])
def test_category_rules(p_greedy, p_sample, expected):
    assert probe.category(p_greedy, p_sample) == expected

def items(n, rel, split):
    return [{"id": f"{rel}{split}{i}", "relation": rel, "split": split, "question": f"q{rel}{i}?", "answer": f"a{i}",
             "answers": [f"a{i}"]} for i in range(n)]

def test_exemplars_same_relation_fixed_and_never_the_item(tiny_model):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pool = items(8, "r1", "dev") + items(3, "r2", "dev")
    sets = probe.exemplar_sets(pool, n_prompts=10, shots=4, seed=0)
    assert sets == probe.exemplar_sets(pool, 10, 4, 0) and sets != probe.exemplar_sets(pool, 10, 4, 1)
    assert all(len(s) == 5 and {e["relation"] for e in s} == {"r1"} for s in sets["r1"])
    assert all(len(s) == 3 for s in sets["r2"])  # fewer than shots + 1 available: all of them
    item = sets["r1"][0][0]  # an item that is itself an exemplar (a file without splits probes its own pool)
    text = tokenizer.decode(list(probe.prefix_ids(tokenizer, item, sets["r1"][0], 4)))
    assert item["question"] not in text and text.count("Question:") == 4 and sets["r1"][0][4]["question"] in text

@pytest.fixture(scope="module")
def known_world(tmp_path_factory):
    """Six facts a tiny model learns (train split), six it never sees (test split), and dev exemplars."""
    d = tmp_path_factory.mktemp("known")
    names = ["Zorb Quen", "Mirra Tolk", "Pell Ardo", "Vask Ilde", "Orla Fenn", "Tam Brecko"]
    cities = ["Vardholm", "Ostrava", "Quito", "Lyngby", "Tarvik", "Hollin"]
    rows = []
    for i, (n, c) in enumerate(zip(names, cities)):
        rows.append({"id": f"k{i}", "question": f"Where does {n} live?", "answer": c,
                     "relation": "city", "split": "train"})
        rows.append({"id": f"u{i}", "question": f"Where does {n[::-1].title()} live?", "answer": c[::-1].title(),
                     "relation": "city", "split": "test"})
        rows.append({"id": f"d{i}", "question": f"Where does {n.split()[0]} Dev live?", "answer": f"Devtown{i}",
                     "relation": "city", "split": "dev"})
    (d / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train_only = d / "train.jsonl"
    train_only.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "split"}) + "\n"
                                  for r in rows if r["split"] != "test"))
    # learns the train facts and the dev exemplars, never the test facts; --qa_pack puts several QA items in
    # one sequence, as a few-shot prompt does (a model that saw one QA a sequence copies the exemplars' answers)
    run("train.py", "--data", train_only, "--out_dir", d / "model", "--max_steps", 300, "--lr", 3e-3,
        "--batch_size", 6, "--warmup", 5, "--n_layer", 2, "--n_head", 2, "--n_embd", 64, "--vocab_size", 300,
        "--qa_pack", 3)
    return d

def probe_rows(world, out, *extra, split="train"):
    run("probe.py", "--model", world / "model", "--qa", world / "qa.jsonl", "--split", split, "--out", out,
        "--n_prompts", 3, "--samples", 4, *extra)
    return [json.loads(l) for l in open(out)]

def test_probe_known_and_unknown(known_world, tmp_path):
    rows = probe_rows(known_world, tmp_path / "p.jsonl")
    assert len(rows) == 6 and all(r["n_prompts"] == 3 and r["samples"] == 4 for r in rows)
    for r in rows:
        assert r["p_greedy"] == r["greedy_correct"] / 3 and r["p_sample"] == r["sample_correct"] / 12
        assert r["category"] == probe.category(r["p_greedy"], r["p_sample"])
    assert Counter(r["category"] for r in rows)["HighlyKnown"] >= 5
    unseen = probe_rows(known_world, tmp_path / "u.jsonl", split="test")
    assert all(r["category"] == "Unknown" for r in unseen)
    fast = probe_rows(known_world, tmp_path / "f.jsonl", "--fast")
    assert [r["category"] for r in fast] == [r["category"] for r in rows]

def test_probe_is_deterministic(known_world, tmp_path):
    a = probe_rows(known_world, tmp_path / "a.jsonl", "--seed", 3)
    assert a == probe_rows(known_world, tmp_path / "b.jsonl", "--seed", 3)

def test_probe_under_torchrun_merges_one_output(known_world, tmp_path):
    run("probe.py", "--model", known_world / "model", "--qa", known_world / "qa.jsonl", "--out", tmp_path / "t.jsonl",
        "--n_prompts", 3, "--samples", 4, "--batch_size", 1, torchrun=2)
    rows = [json.loads(l) for l in open(tmp_path / "t.jsonl")]
    single = probe_rows(known_world, tmp_path / "s.jsonl", "--batch_size", 1)
    assert [r["id"] for r in rows] == [r["id"] for r in single]
    assert [r["greedy_correct"] for r in rows] == [r["greedy_correct"] for r in single]

def check_report(report, stages):
    assert list(report["categories"]) == stages
    for stage, counts in report["categories"].items():
        assert list(counts) == CATS and sum(counts.values()) == report["n_train_items"]
    for pair, m in report["transitions"].items():
        before, after = pair.split("->")
        for c in CATS:  # rows sum to the categories before, columns to the categories after
            assert sum(m[c].values()) == report["categories"][before][c]
            assert sum(m[a][c] for a in CATS) == report["categories"][after][c]
    assert sum(sum(r.values()) for r in report["probe_noise"].values()) == report["n_train_items"]
    assert set(report["test_exact_match"]) == set(["base"] + stages[1:])

def fake_probe(path, categories):
    """A finished base-model probe (gradual.py reuses finished stages), with categories chosen by the test."""
    with open(path, "w") as f:
        for k, c in categories.items():
            f.write(json.dumps({"id": k, "relation": "city", "category": c}) + "\n")

@pytest.mark.slow
def test_gradual_end_to_end_and_resume(known_world, tmp_path):
    out = tmp_path / "g"
    out.mkdir()
    # the model knows k0..k5; the base probe says k0, k1 are MaybeKnown and the rest Unknown, so stage 1
    # trains on k0, k1 and the re-probe finds k2..k5 known: they moved up and make stage 2
    fake_probe(out / "probe_base.jsonl", {f"k{i}": "MaybeKnown" if i < 2 else "Unknown" for i in range(6)})
    fake_probe(out / "probe_base_seed2.jsonl", {f"k{i}": "MaybeKnown" if i < 3 else "Unknown" for i in range(6)})
    flags = ["--model", known_world / "model", "--qa", known_world / "qa.jsonl", "--out_dir", out, "--stage_steps", 3,
             "--n_prompts", 3, "--samples", 2, "--batch_size", 4, "--warmup", 1, "--lr", 1e-5]
    run("gradual.py", *flags)
    report = json.load(open(out / "report.json"))
    check_report(report, ["base", "stage1", "stage2"])
    assert report["n_stage1"] == 2 and report["n_stage2"] >= 4
    assert report["transitions"]["base->stage1"]["Unknown"]["HighlyKnown"] >= 3
    assert report["probe_noise"]["Unknown"]["MaybeKnown"] == 1
    assert report["knowledge"]["base->stage1"]["gained"] >= 3
    commands = open(out / "commands.sh").read().splitlines()
    assert sum("probe.py" in c for c in commands) == 3 and sum("train.py" in c for c in commands) == 2
    # an interrupted run resumes from the last finished stage: drop stage 2 and what follows, run again
    shutil.rmtree(out / "stage2")
    for f in ("report.json", "probe_stage2.jsonl", "eval_stage2.json"):
        os.remove(out / f)
    run("gradual.py", *flags)
    new = open(out / "commands.sh").read().splitlines()[len(commands):]
    assert [c.split()[1].rsplit("/", 1)[1] for c in new] == ["train.py", "probe.py", "eval.py"]
    check_report(json.load(open(out / "report.json")), ["base", "stage1", "stage2"])

@pytest.mark.slow
def test_gradual_reports_when_nothing_moves_up(known_world, tmp_path):
    """No fact moved up in stage 1, or no MaybeKnown fact to start from: legitimate outcomes of the method. The
    stage is skipped and said so in report.json and the printed report; the run does not fail."""
    out = tmp_path / "g"
    out.mkdir()
    cats = {f"k{i}": "MaybeKnown" if i < 2 else "Unknown" for i in range(6)}
    for name in ("probe_base", "probe_base_seed2", "probe_stage1"):  # the stage-1 re-probe: the same categories
        fake_probe(out / f"{name}.jsonl", cats)
    res = run("gradual.py", "--model", known_world / "model", "--qa", known_world / "qa.jsonl", "--out_dir", out,
              "--stage_steps", 2, "--n_prompts", 2, "--samples", 2, "--batch_size", 4, "--warmup", 1, "--lr", 1e-5)
    report = json.load(open(out / "report.json"))
    check_report(report, ["base", "stage1"])
    assert report["n_stage2"] == 0 and "no items moved up" in report["stage2_skipped"]
    assert "stage 2 skipped" in res.stdout and not (out / "stage2").exists()
    # no MaybeKnown item at all: stage 1 has nothing to train on either; the base model is the result, reported
    out = tmp_path / "g0"
    out.mkdir()
    for name in ("probe_base", "probe_base_seed2"):
        fake_probe(out / f"{name}.jsonl", {f"k{i}": "Unknown" for i in range(6)})
    res = run("gradual.py", "--model", known_world / "model", "--qa", known_world / "qa.jsonl", "--out_dir", out,
              "--stage_steps", 2, "--n_prompts", 2, "--samples", 2, "--batch_size", 4, "--warmup", 1, "--lr", 1e-5)
    report = json.load(open(out / "report.json"))
    assert list(report["categories"]) == ["base"] and report["n_stage1"] == 0 and report["n_stage2"] == 0
    assert "no MaybeKnown" in report["stage1_skipped"] and report["knowledge"]["base->base"]["gained"] == 0
    assert "stage 1 skipped" in res.stdout and not (out / "stage1").exists()
    assert list(report["test_exact_match"]) == ["base"]

def test_gradual_rejects_a_misspelt_train_flag_before_any_probe(known_world, tmp_path):
    out = tmp_path / "g"
    res = run("gradual.py", "--model", known_world / "model", "--qa", known_world / "qa.jsonl", "--out_dir", out,
              "--learning_rate", 1e-4, check=False)
    assert res.returncode == 2 and "--learning_rate" in res.stderr, res.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing probed, nothing written

def test_probe_says_where_exemplars_come_from_without_a_dev_split(known_world, tmp_path):
    rows = [json.loads(l) for l in open(known_world / "qa.jsonl")]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows if r["split"] != "dev"))
    res = run("probe.py", "--model", known_world / "model", "--qa", qa, "--split", "test",
              "--out", tmp_path / "p.jsonl", "--n_prompts", 1, "--samples", 1)
    assert "no dev split: few-shot exemplars come from the train split" in res.stderr

@pytest.mark.slow
def test_bench_whole_process_probes_the_questions_asked(tiny_model, bios, tmp_path):
    """bench.py's whole-process number: `probe.py --fast` run as a user runs it on exactly n questions of the split
    (with the dev split beside them as the exemplar pool); the sampling probe's whole process is its measured fixed
    part (start, imports, model load) plus n questions at its rate."""
    import bench
    r = bench.whole_process(str(tiny_model), str(bios / "qa.jsonl"), "train", 10, {"probe_q_per_s": 2.0},
                            str(tmp_path))
    rows = [json.loads(l) for l in open(tmp_path / "whole_probe.jsonl")]
    train = {it["id"] for it in probe.read_qa(str(bios / "qa.jsonl"), "train")}
    assert len(rows) == 10 and {row["id"] for row in rows} <= train
    assert len({row["id"] for row in rows}) == 10
    assert 0 < r["fixed_s"] and r["fast_whole_s"] > 0
    assert r["sampling_whole_s"] == pytest.approx(r["fixed_s"] + 5)
