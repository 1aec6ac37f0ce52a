"""eval.py: answer matching, evaluate() and its breakdowns, the teacher-forced fast path against real
generation, decoding with a shared prefix cache (what probe.py relies on), and the command line."""
import json
import os

import pytest
import torch

import augment
import eval as ev
from conftest import run
from data import encode_pair, read_qa
from decode import decode, generate, left_pad, prefix_cache, score_gold, stop_ids
from model import load_model
from trained_facts import FACTS, fact_items, facts_file, one_thread, trained_on_facts, write_jsonl

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield

@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """Tiny scratch model that answers all six made-up facts (shared with test_train.py via the cache)."""
    return load_model(trained_on_facts(tmp_path_factory, 150))

@pytest.fixture(scope="module")
def halfway(tmp_path_factory):
    """The same, trained 60 steps: some answers right, some wrong."""
    return load_model(trained_on_facts(tmp_path_factory, 60))

def items_of(rows):
    """QA items as read_qa returns them ('answers', 'split', ...)."""
    return [{"split": None, **r, "answers": r.get("answers", [r.get("answer")]),
             "answer": r.get("answer", (r.get("answers") or [None])[0])} for r in rows]

# -----------------------------------------------------------------------------
# matching

def test_normalize_ignores_case_whitespace_and_surrounding_punctuation():
    assert ev.normalize("  Paris. ") == "paris"
    assert ev.normalize('"New   York"!') == "new york"
    assert ev.normalize("\tJuly 9, 1950.\n") == "july 9, 1950"  # inner punctuation stays
    assert ev.exact_match("PARIS", ["Paris"])
    assert ev.exact_match(" paris ,", ["Paris"])
    assert ev.exact_match("New  York", ["new york"])
    assert not ev.exact_match("Paris Texas", ["Paris"])
    assert not ev.exact_match("", ["Paris"])

def test_exact_match_and_contains_on_a_date():
    assert not ev.exact_match("July 9", ["July 9, 1950"])  # a prefix of the answer is not the answer
    assert ev.contains("July 9", ["July 9"]) and not ev.contains("July 9", ["July 9, 1950"])
    assert ev.contains("July 9, 1950", ["July 9"])  # the gold answer inside a longer prediction
    assert not ev.exact_match("July 9, 1950", ["July 9"])
    assert ev.contains("born on july 9, 1950 in Paris", ["July 9, 1950"])

def test_any_of_several_answers_counts():
    answers = ["United States", "USA", "U.S."]
    assert ev.exact_match("usa", answers) and ev.exact_match("U.S", answers)
    assert ev.exact_match("united states.", answers)
    assert not ev.exact_match("America", answers)
    assert ev.contains("the USA today", answers) and not ev.contains("America", answers)

# -----------------------------------------------------------------------------
# evaluate()

def test_evaluate_returns_the_breakdowns(tiny_model, bios):
    model, tok = load_model(str(tiny_model))
    items = read_qa(str(bios / "qa.jsonl"))[::5]  # every split and relation, 36 items
    res = ev.evaluate(model, tok, items)
    assert {"exact_match", "contains", "n", "by_relation", "by_split", "predictions"} <= set(res)
    assert "by_category" not in res
    assert res["n"] == len(items) and len(res["predictions"]) == len(items)
    assert set(res["by_split"]) == {it["split"] for it in items}
    assert set(res["by_relation"]) == {it["relation"] for it in items}
    assert (sum(s["n"] for s in res["by_split"].values()) == sum(s["n"] for s in res["by_relation"].values())
            == len(items))
    for p, it in zip(res["predictions"], items):
        assert p["id"] == it["id"] and isinstance(p["prediction"], str) and "\n" not in p["prediction"]
        assert p["exact_match"] == ev.exact_match(p["prediction"], it["answers"])
        assert p["contains"] == ev.contains(p["prediction"], it["answers"])
    assert res["exact_match"] == sum(p["exact_match"] for p in res["predictions"]) / len(items)
    assert 0 <= res["exact_match"] <= res["contains"] <= 1
    # with probe categories (some items unprobed)
    cats = {it["id"]: ("HighlyKnown" if i % 3 == 0 else "Unknown") for i, it in enumerate(items[:20])}
    res2 = ev.evaluate(model, tok, items, categories=cats)
    by_cat = res2["by_category"]
    assert by_cat["HighlyKnown"]["n"] == 7 and by_cat["Unknown"]["n"] == 13
    assert by_cat["unprobed"]["n"] == len(items) - 20
    assert [p["prediction"] for p in res2["predictions"]] == [p["prediction"] for p in res["predictions"]]
    model.eval()  # evaluate restores the mode it found
    ev.evaluate(model, tok, items[:2])
    assert not model.training
    model.train()
    ev.evaluate(model, tok, items[:2])
    assert model.training

def test_overfit_model_answers_its_facts(overfit):
    model, tok = overfit
    res = ev.evaluate(model, tok, items_of(fact_items()))
    assert res["exact_match"] == 1.0, res["predictions"]
    assert [p["prediction"] for p in res["predictions"]] == [city for _, _, city in FACTS]

def test_generation_does_not_depend_on_batching(overfit, halfway):
    """Left padding with position ids: a question gets the same answer alone or in a batch of mixed lengths."""
    questions = ([it["question"] for it in fact_items()]
                 + ["Where?", "Which city was Ama Trellis born in? Tell me, please, now."])
    prompts = [augment.qa_prompt(q) for q in questions]
    for model, tok in (overfit, halfway):
        model.eval()
        together = generate(model, tok, prompts, batch_size=64)
        alone = [generate(model, tok, [p], batch_size=1)[0] for p in prompts]
        assert together == alone

# -----------------------------------------------------------------------------
# the fast path (one teacher-forced pass) against generation

def perturbed_items():
    """The facts with their answers, and golds that greedy decoding can almost produce: the answer plus more
    words, a prefix of it, another person's answer, and a list where only the second answer is right.
    (Golds are in the form the model learned: the fast path checks the gold's own tokens, so a gold that
    only matches after normalization, "Vellingrad," or "vellingrad", counts for generation alone.)"""
    items = []
    for i, (name, rel, city) in enumerate(FACTS):
        question = fact_items()[i]["question"]
        other = FACTS[(i + 1) % len(FACTS)][2]
        golds = [[city], [city + " Heights"], [city[:4]], [other], [other, city]]
        if " " in city:  # "July 9" against "July 9, 1950": the stop token after the answer decides
            golds.append([city.split()[0]])
        for j, answers in enumerate(golds):
            items.append({"id": f"{i}.{j}", "question": question, "answers": answers, "answer": answers[0],
                          "relation": rel, "split": None})
    return items

def test_fast_path_agrees_with_generation(overfit, halfway):
    items = perturbed_items()
    seen = set()
    for model, tok in (overfit, halfway):
        slow = ev.evaluate(model, tok, items, fast=False)["predictions"]
        fast = ev.evaluate(model, tok, items, fast=True)["predictions"]
        for it, s, f in zip(items, slow, fast):
            assert s["exact_match"] == f["exact_match"], (it["answers"], s["prediction"])
            seen.add(s["exact_match"])
    assert seen == {True, False}  # both outcomes occur: the check is not vacuous

def test_score_gold_probability_at_low_temperature(overfit, halfway):
    for model, tok in (overfit, halfway):
        items = perturbed_items()
        prompts = [augment.qa_prompt(it["question"]) for it in items]
        golds = [it["answers"][0] for it in items]
        greedy, prob = score_gold(model, tok, prompts, golds, temperature=1e-3)
        gen = generate(model, tok, prompts)
        for g, p, pred, gold in zip(greedy, prob, gen, golds):
            assert g == (pred == gold), (pred, gold)  # greedy-correct in its own tokenization
            if g:
                assert p > 0.99, (gold, p)  # sampling at T -> 0 is greedy decoding
            else:
                assert p < 0.01, (gold, p)
        # at T = 1 the probability is the product of the model's token probabilities: below 1, above 0
        _, p1 = score_gold(model, tok, prompts[:1], golds[:1], temperature=1.0)
        full, n_prompt = encode_pair(tok, prompts[0], augment.qa_completion(golds[0]))
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([full])).logits[0].float().log_softmax(-1)
        expected = sum(logp[t - 1, full[t]].item() for t in range(n_prompt, len(full)))
        assert p1[0] == pytest.approx(float(torch.tensor(expected).exp()), rel=1e-4)
        # top-k 1 keeps only the argmax: the probability is 1 for greedy-correct golds and 0 otherwise
        g, pk = score_gold(model, tok, prompts, golds, temperature=1.0, top_k=1)
        assert [round(x, 6) for x in pk] == [1.0 if x else 0.0 for x in g]

def test_fast_path_encodes_the_prompt_as_generation_does_also_with_chat(tiny_model):
    """score_gold must teacher-force the very prompt tokens that generate() feeds the model, with a chat
    template too (eval.py --fast --chat); otherwise the fast path answers a different prompt."""
    model, tok = load_model(str(tiny_model))
    tok.chat_template = "{{ bos_token }}User: {{ messages[0]['content'] }}\nAssistant:"
    item = items_of([{"id": "a", "question": "Which city was Ada Lee born in?", "answer": "Eugene", "relation": "r"}])
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["input_ids"][0].tolist()),
                                           with_kwargs=True)
    try:
        for chat in (False, True):
            seen.clear()
            ev.evaluate(model, tok, item, chat=chat, fast=False)
            generated_prompt = seen[0]
            seen.clear()
            ev.evaluate(model, tok, item, chat=chat, fast=True)
            forced = seen[0]
            assert forced[:len(generated_prompt)] == generated_prompt, (chat, tok.convert_ids_to_tokens(forced[:4]))
    finally:
        hook.remove()

# -----------------------------------------------------------------------------
# decoding with a shared prefix cache (probe.py's speed path)

def test_decode_with_a_shared_prefix_cache_equals_full_prompts(overfit):
    model, tok = overfit
    model.eval()
    stops = stop_ids(tok)
    prefix = "".join(augment.qa_prompt(it["question"]) + augment.qa_completion(it["answer"]) for it in fact_items()[:2])
    questions = [it["question"] for it in fact_items()[2:]] + ["Which city was Zorblat Quimbus born in?", "Who?"]
    prefix_ids = tok(prefix)["input_ids"]
    suffixes = []
    for q in questions:  # as probe.py does: the prompt's tokens after the prefix's
        full = tok(prefix + augment.qa_prompt(q))["input_ids"]
        assert full[:len(prefix_ids)] == prefix_ids
        suffixes.append(full[len(prefix_ids):])
    assert len({len(s) for s in suffixes}) > 1  # rows of different lengths: the padding matters
    # reference: each full prompt, left padded, no cache shared
    ids, mask = left_pad([prefix_ids + s for s in suffixes], tok.pad_token_id, "cpu")
    reference = decode(model, ids, mask, stops, max_new_tokens=12)
    assert any(reference) and sum(tok.decode(r).strip() in {c for _, _, c in FACTS} for r in reference) >= 3

    def with_prefix(n=1):
        ids, mask = left_pad(suffixes, tok.pad_token_id, "cpu")
        with torch.no_grad():
            past = prefix_cache(model, prefix_ids)
        past.batch_repeat_interleave(len(suffixes))
        mask = torch.cat([torch.ones(len(suffixes), len(prefix_ids), dtype=mask.dtype), mask], dim=1)
        return decode(model, ids, mask, stops, max_new_tokens=12, past=past, n=n)

    assert with_prefix() == reference
    # n copies per row (probe.py's samples), greedy: every copy is the reference
    assert with_prefix(n=3) == [r for r in reference for _ in range(3)]

# -----------------------------------------------------------------------------
# the command line

def test_cli_writes_json_with_probe_categories(overfit, tmp_path_factory, tmp_path):
    model_dir = trained_on_facts(tmp_path_factory, 150)
    qa = facts_file(str(tmp_path_factory.getbasetemp()))
    probe = write_jsonl(tmp_path / "probe.jsonl", [{"id": "f0", "category": "HighlyKnown"},
                                                   {"id": "f1", "category": "HighlyKnown"},
                                                   {"id": "f2", "category": "Unknown"}])
    out = tmp_path / "res.json"
    res = run("eval.py", "--model", model_dir, "--qa", qa, "--out", out, "--probe", probe)
    assert "exact match 100.0%" in res.stdout and "HighlyKnown" in res.stdout
    data = json.load(open(out))
    assert data["exact_match"] == 1.0 and data["contains"] == 1.0 and data["n"] == 6
    assert {k: v["n"] for k, v in data["by_category"].items()} == {"HighlyKnown": 2, "Unknown": 1, "unprobed": 3}
    assert set(data["by_relation"]) == {"born_in", "works_in"}
    assert len(data["predictions"]) == 6
    assert not os.path.exists(str(out) + ".tmp")
    # asked in a prompt format it never trained on (the model learned the facts in format 0 only), it answers less
    run("eval.py", "--model", model_dir, "--qa", qa, "--out", out, "--prompt_format", "heldout")
    assert json.load(open(out))["format"] == "heldout" and json.load(open(out))["exact_match"] < 1.0
    res = run("eval.py", "--model", model_dir, "--qa", qa, "--prompt_format", "other", check=False)
    assert res.returncode == 2 and "--prompt_format other" in res.stderr

def test_cli_split_and_no_probe(tiny_model, bios, tmp_path, capsys):
    out = tmp_path / "res.json"
    ev.main(["--model", str(tiny_model), "--qa", str(bios / "qa.jsonl"), "--split", "dev", "--out", str(out), "--fast"])
    data = json.load(open(out))
    assert {"exact_match", "contains", "n", "by_relation", "by_split"} <= set(data) and "by_category" not in data
    assert set(data["by_split"]) == {"dev"} and data["n"] == len(read_qa(str(bios / "qa.jsonl"), "dev"))
    assert "exact match" in capsys.readouterr().out

def test_cli_nonexistent_model_is_one_line_and_exit_2(tmp_path, bios):
    missing, out = tmp_path / "no_such_model", tmp_path / "res.json"
    res = run("eval.py", "--model", missing, "--qa", bios / "qa.jsonl", "--out", out, check=False)
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("eval.py:") and str(missing) in lines[0], res.stderr
    assert not out.exists()

def test_cli_bad_qa_and_probe_files(tiny_model, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?", "answer": "A"}\nnot json\n')
    with pytest.raises(SystemExit) as e:
        ev.main(["--model", str(tiny_model), "--qa", str(bad)])
    assert e.value.code == 2 and f"{bad}:2:" in capsys.readouterr().err
    good = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Q?", "answer": "A"}])
    with pytest.raises(SystemExit) as e:
        ev.main(["--model", str(tiny_model), "--qa", str(good), "--probe", str(tmp_path / "missing_probe.jsonl")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "missing_probe.jsonl" in err and len(err.strip().splitlines()) == 1

# -----------------------------------------------------------------------------
# few-shot (--shots): probe.py's prompt, so that its greedy exact match is the probe's P_greedy on that prompt

def test_few_shot_eval_is_the_probes_greedy_on_its_first_prompt(tmp_path_factory, tmp_path, capsys):
    import probe
    model_dir = trained_on_facts(tmp_path_factory, 60)
    unknown = [{"id": f"u{i}", "question": f"Which city was {n} born in?", "answer": c, "relation": "born_in"}
               for i, (n, c) in enumerate([("Quill Farrow", "Zentharo"), ("Odile Marsk", "Pelloway")])]
    # no splits: exemplars from the file itself, never the item
    qa = str(write_jsonl(tmp_path / "qa.jsonl", fact_items() + unknown))
    outcomes = set()
    for fast in ([], ["--fast"]):
        for seed in (0, 1):
            ev.main(["--model", model_dir, "--qa", qa, "--shots", "2", "--seed", str(seed),
                     "--out", str(tmp_path / "e.json"), *fast])
            probe.main(["--model", model_dir, "--qa", qa, "--n_prompts", "1", "--shots", "2", "--samples", "1",
                        "--seed", str(seed), "--out", str(tmp_path / "p.jsonl"), *fast])
            em = {p["id"]: int(p["exact_match"]) for p in json.load(open(tmp_path / "e.json"))["predictions"]}
            greedy = {r["id"]: r["greedy_correct"] for r in map(json.loads, open(tmp_path / "p.jsonl"))}
            assert em == greedy, (fast, seed)
            outcomes |= set(em.values())
    assert outcomes == {0, 1}  # right and wrong answers both occur: the check is not vacuous
    assert "2-shot" in capsys.readouterr().out

def test_few_shot_exemplars_come_from_dev_never_the_test_split(tiny_model, bios):
    from data import exemplar_pool, exemplar_sets, prefix_ids
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model)
    pool, source = exemplar_pool(str(bios / "qa.jsonl"))
    assert source == "dev" and {it["split"] for it in pool} == {"dev"}
    test = read_qa(str(bios / "qa.jsonl"), "test")
    sets = exemplar_sets(pool, 1, 3, 0)
    for it in test[:12]:
        text = tok.decode(list(prefix_ids(tok, it, sets[it["relation"]][0], 3)))
        assert text.count("Question:") == 3 and it["question"] not in text
        assert all(e["relation"] == it["relation"] and e["split"] == "dev" for e in sets[it["relation"]][0])

def test_shots_and_chat_together_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        ev.get_args(["--model", "m", "--qa", "q", "--shots", "4", "--chat"])
    assert e.value.code == 2 and "--shots" in capsys.readouterr().err
