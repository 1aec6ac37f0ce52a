"""The repo on real tokenizers (Llama-2 and Mistral SentencePiece, Qwen2 and GPT-2 byte-level BPE, Mistral's
tekken through MistralCommonBackend), each carried by a tiny random model (tests/real_tokenizers.py):
facts and names keep their tokens in every format and in the question, one BOS per few-shot prompt and
per --qa_pack sequence (the same tokens in both), stop tokens, no prompt / answer merge; and, slow, train ->
eval -> probe (--fast too) overfitting six facts to 100% exact match on each."""
import json
from argparse import Namespace

import pytest

import augment
import data
from data import batches
import probe
from conftest import run
from decode import stop_ids
from model import load_model
from real_tokenizers import VOCAB

NAMES = list(VOCAB)
TOKENIZERS = NAMES + ["smollm2"]  # and the real model's (tests/test_smollm2.py runs the model itself)
# no prefix space: a text's first word is tokenized unlike after a space
BYTE_LEVEL = {"qwen2", "gpt2", "tekken", "smollm2"}
ADDS_BOS = {"llama2", "mistral_v3", "tekken"}

@pytest.fixture(scope="module")
def tokenizers(real_models):
    from transformers import AutoTokenizer
    return {name: AutoTokenizer.from_pretrained(folder) for name, folder in real_models.items()}

@pytest.fixture
def tok(name, request):
    """The tokenizer of a test's `name`: a real tokenizer's tiny model, or SmolLM2's converted folder."""
    if name == "smollm2":
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(request.getfixturevalue("smollm2"))
    return request.getfixturevalue("tokenizers")[name]

def is_sub(needle, hay):
    n = len(needle)
    return n > 0 and any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))

def inside(tok, text):
    """The tokens `text` gets inside a sentence, after a space: what a question gives a name or a fact."""
    def enc(s):
        return tok(s, add_special_tokens=False)["input_ids"]
    return enc("x " + text)[len(enc("x")):]

def test_each_tokenizer_loads_with_its_full_vocabulary(real_models, tokenizers):
    from transformers import AutoConfig
    for name, tok in tokenizers.items():
        model, tok2 = load_model(real_models[name])
        assert len(tok2) == VOCAB[name] == model.config.vocab_size, name
        assert (type(tok2).__name__ == "MistralCommonBackend") == (name == "tekken"), type(tok2).__name__
        assert (data.start_ids(tok) == [tok.bos_token_id]) == (name in ADDS_BOS), (name, data.start_ids(tok))
        assert data.lead_space(tok) == (" " if name in BYTE_LEVEL else ""), name
        assert AutoConfig.from_pretrained(real_models[name]).vocab_size == VOCAB[name]

@pytest.mark.parametrize("name", TOKENIZERS)
def test_names_and_facts_keep_their_tokens_in_every_format_and_in_the_question(name, tok, bios):
    docs, qa = data.read_docs(str(bios / "docs.jsonl")), data.read_qa(str(bios / "qa.jsonl"))
    by_doc = {}
    for it in qa:
        by_doc.setdefault(it["doc_id"], []).append(it)
    for d in docs[:10]:
        person = d["text"].split(" was born on ")[0]
        name_ids = inside(tok, person)
        for v in augment.format_variants(d["text"], 8, list(d["facts"].values())):  # variant 0: the original
            ids = data.encode_doc(tok, v)
            assert is_sub(name_ids, ids), (name, tok.convert_ids_to_tokens(ids[:6]), v[:40])
            for fact in d["facts"].values():
                assert is_sub(inside(tok, fact), ids), (name, fact, v)
        for it in by_doc[d["id"]]:
            fact_ids = inside(tok, it["answer"])
            for fmt in range(len(augment.QA_FORMATS)):
                prompt = augment.qa_prompt(it["question"], fmt)
                full, n = data.encode_pair(tok, prompt, augment.qa_completion(it["answer"]))
                assert is_sub(name_ids, full[:n]), (name, fmt, it["question"])
                # no prompt / answer merge
                assert full[n:n + len(fact_ids)] == fact_ids, (name, fmt, tok.convert_ids_to_tokens(full[n:]))
                assert tok.decode(full[n + len(fact_ids):]) == "\n"
                assert full[:n] == data.encode_pair(tok, prompt, "")[0]  # the prompt generation feeds
    # the check can fail: on byte-level BPE the document's own first word, encoded as it stands, is another token
    if name in BYTE_LEVEL:
        raw = tok(docs[0]["text"], add_special_tokens=False)["input_ids"]
        assert not is_sub(inside(tok, docs[0]["text"].split(" was born on ")[0]), raw)

@pytest.mark.parametrize("name", TOKENIZERS)
def test_one_bos_per_few_shot_prompt_and_qa_pack_builds_the_probes_sequence(name, tok, bios):
    items = [it for it in data.read_qa(str(bios / "qa.jsonl")) if it["relation"] == "birth_city"][:5]
    exemplars, asked = items[:4], items[4]
    prefix = list(probe.prefix_ids(tok, asked, exemplars, shots=4))
    suffix = data.encode_pair(tok, augment.qa_prompt(asked["question"]), "", bos=False)[0]
    prompt = prefix + suffix
    bos = tok.bos_token_id
    assert prompt.count(bos) == (1 if name in ADDS_BOS else 0), (name, prompt.count(bos))
    assert name not in ADDS_BOS or prompt[0] == bos, (name, prompt.count(bos))
    assert tok.decode(prompt, skip_special_tokens=True).count("Question:") == 5
    # train.py --qa_pack 5 on these five items: each packed sequence is one BOS and the items end to end,
    # token for token what a probe feeds the model when it asks the last of them after the other four
    args = Namespace(aug=1, qa_aug=1, qa_pack=5, seed=0, chat=False)
    examples = batches.load_examples(args, [("qa", items)], tok, 10 ** 6, False)
    assert len(examples) == 1 and len(examples[0]) == 8
    by_question = {it["question"]: it for it in items}
    for ids, spans in examples[0]:
        assert ids.count(bos) == (1 if name in ADDS_BOS else 0)
        order = [q for q in (tok.decode(ids, skip_special_tokens=True).split("Question: ")) if q]
        packed = [by_question[q.split("\n")[0]] for q in order]
        expect = (list(probe.prefix_ids(tok, packed[-1], packed[:4], 4)) +
                  data.encode_pair(tok, augment.qa_prompt(packed[-1]["question"]),
                                   augment.qa_completion(packed[-1]["answer"]), bos=False)[0])
        assert ids == expect, name
        assert len(spans) == 5
        assert all(tok.decode(ids[s:e]).strip() == it["answer"] for (s, e), it in zip(spans, packed))

@pytest.mark.parametrize("name", TOKENIZERS)
def test_stop_tokens(name, tok):
    stops = stop_ids(tok)
    newline = data.encode_pair(tok, "Question: Where?\nAnswer:", " Paris\n")[0][-1]
    assert newline in stops and tok.eos_token_id in stops, name
    assert all("\n" in tok.decode([i]) for i in stops if i != tok.eos_token_id)
    assert not any(i in stops for i in inside(tok, "Paris Texas Answer"))
    assert stop_ids(tok) is stops  # cached: decoding a 150k vocabulary happens once

# -----------------------------------------------------------------------------
# end to end on each tokenizer: train -> eval -> probe (--fast too), six facts to 100% exact match

@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_train_eval_probe_overfit_six_facts(name, real_models, tmp_path):
    from trained_facts import FACTS, QUESTION
    rows = [{"id": f"f{i}", "question": QUESTION[rel].format(person), "answer": city, "relation": "city",
             "split": "train"} for i, (person, rel, city) in enumerate(FACTS)]
    rows += [{"id": f"d{i}", "question": QUESTION["born_in"].format(p), "answer": c, "relation": "city", "split": "dev"}
             for i, (p, c) in enumerate([("Ulla Brant", "Kesterby"), ("Odo Fenwick", "Marlpit"),
                                         ("Ines Varro", "Tollgate"), ("Bram Oster", "Wexmoor"),
                                         ("Cora Lindt", "Ashgrove")])]
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "split"}) + "\n" for r in rows))
    out = tmp_path / "model"
    res = run("train.py", "--init_from", real_models[name], "--data", train_file, "--out_dir", out,
              "--max_steps", 120, "--lr", 1e-2, "--batch_size", 6, "--warmup", 10, "--qa_pack", 3, "--eval_qa", qa,
              "--peak_tflops", 1)
    assert "saved to" in res.stdout
    res = run("eval.py", "--model", out, "--qa", qa, "--split", "train", "--out", tmp_path / "eval.json")
    assert json.load(open(tmp_path / "eval.json"))["exact_match"] == 1.0, res.stdout
    run("eval.py", "--model", out, "--qa", qa, "--split", "train", "--fast", "--out", tmp_path / "fast.json")
    assert json.load(open(tmp_path / "fast.json"))["exact_match"] == 1.0
    cats = {}
    for mode in ("generate", "fast"):
        run("probe.py", "--model", out, "--qa", qa, "--split", "train", "--out", tmp_path / f"{mode}.jsonl",
            "--n_prompts", 3, "--samples", 4, "--shots", 3, *(["--fast"] if mode == "fast" else []))
        cats[mode] = [json.loads(l)["category"] for l in open(tmp_path / f"{mode}.jsonl")]
    assert cats["generate"].count("HighlyKnown") >= 5, cats
    assert cats["fast"] == cats["generate"], cats
