"""train.py: the real loading path, tokenization of facts, QA loss masking, batching, overfitting, resume
after a kill, the checkpoint journal, bad input, and the default run end to end.

Most runs call train.main() in this process (the imports of torch and transformers are paid once); the
resume test and the checks that need a fresh process (a kill, HF_HUB_OFFLINE) run train.py as a script."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import augment
import eval as ev
import train
from conftest import ENV, ROOT, TINY, run
import data
from data import batches
from data import encode_pair, read_docs, read_qa
from model import load_model, loss_sum_of, model_checks
from trained_facts import facts_file, one_thread, trained_on_facts, write_jsonl

FAST = ["--peak_tflops", "1"]  # skip the matmul benchmark of the MFU denominator

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield

def main(capsys, *argv):
    """train.main(argv) in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        train.main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err

def error_lines(err, prog="train.py"):
    """The lines a script wrote about an error (tqdm's progress bars left out)."""
    return [l for l in err.splitlines() if l.strip().startswith(prog + ":") or l.strip().startswith("usage:")
            or "error:" in l]

def digest(folder, names=("model.safetensors", "trainer_state.pt", "args.json", "config.json", "tokenizer.json")):
    return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest() for n in names}

def tensors(path):
    from safetensors.torch import load_file
    return load_file(os.path.join(path, "model.safetensors"))

def is_sub(needle, hay):
    n = len(needle)
    return n > 0 and any(hay[i:i + n] == needle for i in range(len(hay) - n + 1))

def empty_or_absent(path):
    return not os.path.exists(path) or not os.listdir(path)

# -----------------------------------------------------------------------------
# the real loading path

def test_output_folder_loads_with_from_pretrained(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    names = set(os.listdir(tiny_model))
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "trainer_state.pt",
            "args.json", "log.jsonl"} <= names, names
    assert ".next" not in names  # the checkpoint journal was committed
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert tok.pad_token_id is not None and tok.eos_token_id is not None and tok.bos_token_id is not None
    assert len(tok) <= model.config.vocab_size
    # the weights from_pretrained loaded are the ones in model.safetensors (tied embeddings included)
    saved = tensors(tiny_model)
    params = model.state_dict()
    for name, t in saved.items():
        assert torch.equal(params[name], t), name
    assert torch.equal(model.get_input_embeddings().weight, model.get_output_embeddings().weight)
    ids = tok("Question: Which city was Ada born in?\nAnswer:", return_tensors="pt")["input_ids"]
    logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size) and torch.isfinite(logits).all()
    state = torch.load(os.path.join(tiny_model, "trainer_state.pt"), weights_only=False)
    assert state["step"] == 2 and state["optimizer"]["state"]  # AdamW moments were saved
    meta = json.load(open(os.path.join(tiny_model, "args.json")))
    assert meta["step"] == 2 and meta["args"]["max_steps"] == 2 and isinstance(meta["metrics"], dict)
    rows = [json.loads(l) for l in open(os.path.join(tiny_model, "log.jsonl"))]
    assert rows and rows[-1]["step"] == 2 and all(k in rows[-1] for k in ("loss", "lr", "tokens_per_s", "mfu"))

def test_load_model_and_continued_training(tiny_model, bios, tmp_path, capsys):
    model, tok = load_model(str(tiny_model))
    assert tok.pad_token_id is not None and model.config.num_hidden_layers == 2
    out = tmp_path / "cont"
    code, stdout, err = main(capsys, "--init_from", tiny_model, "--data", bios / "docs.jsonl", bios / "qa.jsonl",
                             "--out_dir", out, "--max_steps", 3, "--batch_size", 4, "--warmup", 1, *FAST)
    assert code == 0, err
    assert "saved to" in stdout
    before, after = tensors(tiny_model), tensors(out)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    assert all(before[k].shape == after[k].shape for k in before)  # the same architecture
    assert open(tiny_model / "tokenizer.json").read() == open(out / "tokenizer.json").read()  # the same tokenizer
    assert torch.load(out / "trainer_state.pt", weights_only=False)["step"] == 3  # steps count from the new run
    meta = json.load(open(out / "args.json"))
    assert meta["args"]["init_from"] == str(tiny_model) and meta["step"] == 3
    model2, tok2 = load_model(str(out))
    assert tok2.get_vocab() == tok.get_vocab()

# -----------------------------------------------------------------------------
# the tokenization pitfall: byte-level BPE tokenizes a word at the start of a text or a line unlike after a space,
# so a fact's token ids must be checked to be the same in every format and in the QA prompt

def test_fact_and_name_tokens_identical_in_every_format_and_in_qa(tiny_model, bios):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model)
    def enc(s):
        return tok(s, add_special_tokens=False)["input_ids"]
    docs = read_docs(str(bios / "docs.jsonl"))
    qa = read_qa(str(bios / "qa.jsonl"))
    by_doc = {}
    for it in qa:
        by_doc.setdefault(it["doc_id"], []).append(it)
    n_checked = 0
    for d in docs:
        name = d["text"].split(" was born on ")[0]  # the first sentence names the person
        name_ids = enc(" " + name)
        variants = augment.format_variants(d["text"], 16, list(d["facts"].values()))
        assert len(variants) == 16
        for v in variants:
            ids = data.encode_doc(tok, v)  # what train.py feeds the model
            assert is_sub(name_ids, ids), (name, v)
            for rel, fact in d["facts"].items():
                assert is_sub(enc(" " + fact), ids), (rel, fact, v)
                n_checked += 1
        items = by_doc[d["id"]]
        assert sorted(it["relation"] for it in items) == sorted(d["facts"])
        for it in items:
            fact_ids = enc(" " + d["facts"][it["relation"]])
            assert it["answer"] == d["facts"][it["relation"]]
            for fmt in range(len(augment.QA_FORMATS)):  # every --qa_aug prompt format
                full, n_prompt = encode_pair(tok, augment.qa_prompt(it["question"], fmt),
                                                augment.qa_completion(it["answer"]))
                # the answer tokens are the fact's tokens, then the newline that stops generation
                assert full[n_prompt:n_prompt + len(fact_ids)] == fact_ids, (it, fmt)
                assert tok.decode(full[n_prompt + len(fact_ids):]) == "\n", (it, fmt)
                assert is_sub(name_ids, full[:n_prompt]), (name, it["question"], fmt)  # the name as in the document
    assert n_checked == len(docs) * 16 * 6
    # the check can fail: a name right after a newline (no space) is tokenized differently
    name = docs[0]["text"].split(" was born on ")[0]
    assert not is_sub(enc(" " + name), tok("Biography\n" + name)["input_ids"])

def test_training_sequences_carry_the_fact_tokens(tiny_model, bios):
    """The same property on what train.py actually feeds the model (load_examples, --aug 16 --qa_aug 8)."""
    from argparse import Namespace
    from data import read_examples
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model)
    def enc(s):
        return tok(s, add_special_tokens=False)["input_ids"]
    files = [read_examples(str(bios / "docs.jsonl")), read_examples(str(bios / "qa.jsonl"), "train")]
    args = Namespace(aug=16, qa_aug=8, qa_pack=1, seed=0, chat=False)
    examples = batches.load_examples(args, files, tok, 10 ** 6, True)
    docs, qa = files[0][1], files[1][1]
    assert len(examples) == len(docs) + len(qa)
    for doc, ex in zip(docs, examples):  # a document: 16 formats, each with every fact and the name
        assert len(ex) == 16 and len({tuple(ids) for ids, _ in ex}) == 16
        name_ids = enc(" " + doc["text"].split(" was born on ")[0])
        for ids, spans in ex:
            assert spans == ((0, len(ids)),) and ids[-1] == tok.eos_token_id
            assert is_sub(name_ids, ids)
            for fact in doc["facts"].values():
                assert is_sub(enc(" " + fact), ids)
    for it, ex in zip(qa, examples[len(docs):]):  # a QA item: 8 prompt formats, the same answer tokens after each
        assert len(ex) == 8 and len({tuple(ids[:spans[0][0]]) for ids, spans in ex}) == 8
        for ids, ((n_prompt, end),) in ex:
            assert end == len(ids)
            answer_ids = enc(" " + it["answer"])
            assert ids[n_prompt:n_prompt + len(answer_ids)] == answer_ids
            assert tok.decode(ids[n_prompt + len(answer_ids):]) == "\n"

# -----------------------------------------------------------------------------
# QA loss masking and the global batch

EOS = PAD = 2  # padding with the eos id (what load_model does for a tokenizer without a pad token)

def hand_batch():
    """(ids, spans) rows: QA items (prompt masked) and documents (loss from 0) of mixed lengths; the first
    token of each row is unique, so a row can be found again after sorting and padding."""
    rows = []
    for r, (length, n_prompt) in enumerate([(6, 4), (12, 9), (3, 2), (20, 0), (9, 5), (15, 0), (4, 3), (7, 0)]):
        ids = [100 + r] + [10 + (r * 7 + j) % 50 for j in range(length - 2)] + [EOS]
        rows.append((ids, ((n_prompt, len(ids)),)))
    return rows

def segments(inputs, labels):
    """(row, start, end) of each example in a micro-batch: a row of its own (padded), or the runs of a packed
    row, which restart their position ids at 0."""
    if "attention_mask" in inputs:
        return [(r, 0, int(inputs["attention_mask"][r].sum())) for r in range(labels.shape[0])]
    out = []
    for r, pos in enumerate(inputs["position_ids"].tolist()):
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        out += [(r, a, b) for a, b in zip(starts, starts[1:])]
    return out

@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("grad_accum", [1, 2])
@pytest.mark.parametrize("pack", [0.0, 1.0, 2.0])
def test_micro_batches_mask_prompts_and_padding_and_cover_the_batch(world_size, grad_accum, pack):
    batch = hand_batch()
    by_first = {ids[0]: (ids, spans[0][0]) for ids, spans in batch}
    seen, n_targets = [], 0
    for rank in range(world_size):
        pieces = batches.micro_batches(list(batch), grad_accum, rank, world_size, PAD, "cpu", pack)
        assert len(pieces) == grad_accum  # one forward per micro-batch
        for inputs, labels in pieces:
            ids = inputs["input_ids"]
            packed = "position_ids" in inputs
            assert ids.shape == labels.shape and packed != ("attention_mask" in inputs) and (packed <= (pack > 0))
            if pack and world_size == grad_accum == 1:  # 8 examples of 3 to 20 tokens: padding would double the tokens
                assert packed
            if packed:  # rows of at most pack x the longest example
                longest = max(len(by_first[ids[r, a].item()][0]) for r, a, b in segments(inputs, labels)
                              if ids[r, a].item() in by_first)
                assert ids.shape[1] <= pack * longest
            for r, a, b in segments(inputs, labels):
                if ids[r, a].item() not in by_first:  # the padding at a packed row's end
                    assert (ids[r, a:b] == PAD).all() and (labels[r, a:b] == -100).all()
                    continue
                x, n_prompt = by_first[ids[r, a].item()]
                L = len(x)
                seen.append(x[0])
                assert ids[r, a:a + L].tolist() == x and b - a >= L
                if packed:
                    assert b - a == L and inputs["position_ids"][r, a:b].tolist() == list(range(L))
                    assert labels[r, a] == -100  # an example's first token is no target: it has no context of its own
                else:
                    assert inputs["attention_mask"][r].tolist() == [1] * L + [0] * (ids.shape[1] - L)
                    assert (ids[r, L:] == PAD).all()
                assert (labels[r, a:a + n_prompt] == -100).all()  # no loss on the prompt
                # the answer (or every document token)
                assert labels[r, a + max(n_prompt, 1):a + L].tolist() == x[max(n_prompt, 1):]
                assert (labels[r, a + L:b] == -100).all()  # no loss on the padding, although PAD == EOS
            n_targets += (labels[:, 1:] != -100).sum().item()
    assert sorted(seen) == sorted(by_first)  # every example exactly once over ranks and micro-batches
    # train.py divides the summed loss by this count: it must be the number of labeled targets
    assert n_targets == sum(max(0, len(ids) - max(spans[0][0], 1)) for ids, spans in batch)

def test_examples_of_similar_lengths_are_padded_not_packed():
    """Packing pays where padding wastes: documents of about one length are padded (bench.py measured it faster)."""
    rows = [([100 + r] + [7] * (18 + r % 3), ((0, 19 + r % 3),)) for r in range(8)]
    (inputs, labels), = batches.micro_batches(rows, 1, 0, 1, PAD, "cpu", 2.0)
    assert "attention_mask" in inputs and inputs["input_ids"].shape == (8, 21)

def test_packed_and_padded_gradients_match(tiny_model, bios):
    """The same global batch of bios documents and QA items, packed (rows of 1x and 2x the longest, no mask)
    and padded (attention mask), with lm_head on the target positions only or on all: the loss and every
    gradient agree, so no packed example sees another and the gathered logits are the right ones.
    The negative control: the packed rows with an attention mask of ones (what a collator that adds a mask
    would do) attend across examples, and the check fails."""
    from argparse import Namespace
    model, tok = load_model(str(tiny_model))
    files = [data.read_examples(str(bios / "docs.jsonl")), data.read_examples(str(bios / "qa.jsonl"), "train")]
    args = Namespace(aug=2, qa_aug=2, qa_pack=1, seed=0, chat=False)
    examples = batches.load_examples(args, files, tok, 10 ** 6, False)
    batch = batches.global_batch(examples, 0, 24, 0)

    def grads(pack, add_mask=False, gather=True):
        model.zero_grad()
        total = 0.0
        pieces = batches.micro_batches(batch, 2, 0, 1, tok.pad_token_id, "cpu", pack)
        # some packed, or the test tests nothing
        assert any("position_ids" in inputs for inputs, _ in pieces) == (pack > 0)
        for inputs, labels in pieces:
            if add_mask:
                inputs = {**inputs, "attention_mask": torch.ones_like(inputs["input_ids"])}
            loss = loss_sum_of(model, inputs, labels, gather)
            loss.backward()
            total += loss.item()
        return total, {n: p.grad.clone() for n, p in model.named_parameters()}
    loss_pad, g_pad = grads(0.0, gather=False)  # padded, every logit computed: the reference
    for pack, gather in ((0.0, True), (1.0, True), (2.0, True), (2.0, False)):
        loss_packed, g_packed = grads(pack, gather=gather)
        assert loss_packed == pytest.approx(loss_pad, rel=1e-5)
        for n in g_pad:
            assert torch.allclose(g_packed[n], g_pad[n], rtol=1e-4, atol=1e-6 * g_pad[n].abs().max().item()), n
    loss_mixed, g_mixed = grads(2.0, add_mask=True)
    assert loss_mixed != pytest.approx(loss_pad, rel=1e-5)
    assert not all(torch.allclose(g_mixed[n], g_pad[n], rtol=1e-4, atol=1e-6 * g_pad[n].abs().max().item())
                   for n in g_pad)
    assert model_checks(model, "cpu") == (True, True)

def test_collate_masks_a_real_qa_pair(tiny_model):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model)
    full, n_prompt = encode_pair(tok, augment.qa_prompt("Which city was Ada Lee born in?"),
                                    augment.qa_completion("Eugene"))
    doc = tok("Ada Lee was born in Eugene.")["input_ids"] + [tok.eos_token_id]
    rows = [(full, ((n_prompt, len(full)),)), (doc, ((0, len(doc)),))]
    inputs, labels = batches.collate(rows, tok.pad_token_id, "cpu")
    answer = tok.decode(labels[0][labels[0] != -100])
    assert answer == " Eugene\n"
    assert (labels[1, :len(doc)] == torch.tensor(doc)).all() and (labels[1, len(doc):] == -100).all()

def examples_with_versions(n, k):
    """n examples with k versions each; a version is ((example, version), 0)."""
    return [[((j, v), 0) for v in range(k)] for j in range(n)]

def test_global_batch_is_deterministic_and_covers_each_epoch():
    n, size = 12, 4
    ex = examples_with_versions(n, 1)
    a = [batches.global_batch(ex, s, size, seed=0) for s in range(9)]
    batches.epoch_order.cache_clear()
    b = [batches.global_batch(ex, s, size, seed=0) for s in range(9)]
    assert a == b  # deterministic (not only through the cache)
    for epoch in range(3):
        steps = a[epoch * 3:(epoch + 1) * 3]  # 3 consecutive steps = one epoch
        ids = [x[0][0] for batch in steps for x in batch]
        assert sorted(ids) == list(range(n)), (epoch, ids)
    orders = [[x[0][0] for s in a[e * 3:(e + 1) * 3] for x in s] for e in range(3)]
    assert orders[0] != orders[1] or orders[1] != orders[2]  # reshuffled each epoch
    other = [x[0][0] for s in range(3) for x in batches.global_batch(ex, s, size, seed=1)]
    assert other != orders[0]  # the seed sets the order
    # a batch size that does not divide the data: the stream still covers every example once per epoch
    stream = [x[0][0] for s in range(6) for x in batches.global_batch(ex, s, 5, seed=0)]
    assert sorted(stream[:n]) == list(range(n)) and sorted(stream[n:2 * n]) == list(range(n))

def test_global_batch_rotates_formats_between_epochs():
    n, k, size = 10, 3, 5
    ex = examples_with_versions(n, k)
    steps_per_epoch = n // size
    fmt = {}  # example -> format index per epoch
    for epoch in range(2 * k):
        for s in range(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch):
            for (j, v), _ in batches.global_batch(ex, s, size, seed=0):
                fmt.setdefault(j, []).append(v)
    for j, vs in fmt.items():
        assert len(vs) == 2 * k
        assert all(a != b for a, b in zip(vs, vs[1:])), (j, vs)  # the next epoch shows the next format
        assert sorted(vs[:k]) == list(range(k)), (j, vs)  # k epochs show every format once

# -----------------------------------------------------------------------------
# overfitting a handful of facts

@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    return trained_on_facts(tmp_path_factory, 150)

def test_overfitting_a_handful_of_facts_reaches_100_percent(overfit, tmp_path, tmp_path_factory, capsys):
    meta = json.load(open(os.path.join(overfit, "args.json")))
    assert meta["args"]["eval_qa"] and meta["step"] == 150
    assert meta["metrics"]["all_exact_match"] == 1.0, meta["metrics"]
    assert meta["metrics"]["all_contains"] == 1.0
    qa = facts_file(str(tmp_path_factory.getbasetemp()))
    out = tmp_path / "eval.json"
    capsys.readouterr()
    ev.main(["--model", overfit, "--qa", qa, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "exact match 100.0%" in printed
    res = json.load(open(out))
    assert res["exact_match"] == 1.0 and res["n"] == 6
    assert all(p["exact_match"] for p in res["predictions"])

# -----------------------------------------------------------------------------
# resume after a kill

def train_cmd(init, bios, out, *extra):
    return [sys.executable, os.path.join(ROOT, "train.py"), "--init_from", str(init),
            "--data", str(bios / "docs.jsonl"), str(bios / "qa.jsonl"), "--out_dir", str(out), "--max_steps", "30",
            "--batch_size", "16", "--warmup", "3", *extra]

@pytest.mark.parametrize("extra", [[], pytest.param(["--sam"], marks=pytest.mark.slow, id="sam")])
def test_resume_after_kill_equals_uninterrupted(tiny_model, bios, tmp_path, extra):
    a_dir, b_dir = tmp_path / "A", tmp_path / "B"
    log_a = open(tmp_path / "A.log", "w+")
    run_a = subprocess.Popen(train_cmd(tiny_model, bios, a_dir, "--save_every", "0", *extra), cwd=ROOT, env=ENV,
                             stdout=log_a, stderr=subprocess.STDOUT)
    run_b = subprocess.Popen(train_cmd(tiny_model, bios, b_dir, "--save_every", "5", *extra), cwd=ROOT, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path, step_at_kill = b_dir / "trainer_state.pt", None
    deadline = time.time() + 300
    try:
        while time.time() < deadline and run_b.poll() is None:
            if state_path.exists():
                try:
                    step_at_kill = torch.load(state_path, weights_only=False)["step"]
                except Exception:  # a file being replaced under us: try again
                    step_at_kill = None
                if step_at_kill is not None and step_at_kill >= 5:
                    run_b.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.005)
        run_b.wait(timeout=60)
    finally:
        if run_b.poll() is None:
            run_b.kill()
    assert run_b.returncode == -signal.SIGKILL, "run B finished before it could be killed: the test did not test resume"
    assert 5 <= step_at_kill < 30
    # a kill can also interrupt a checkpoint; plant a half-written one (no COMPLETE mark) for --resume to drop
    nxt = b_dir / ".next"
    if not (nxt / "COMPLETE").exists():
        nxt.mkdir(exist_ok=True)
        (nxt / "model.safetensors").write_bytes(b"half a file")
        (nxt / "args.json").write_text("{\"step\": 99")
    res = run("train.py", *train_cmd(tiny_model, bios, b_dir, "--save_every", "5", *extra)[2:], "--resume")
    assert not nxt.exists()
    run_a.wait(timeout=600)
    log_a.seek(0)
    assert run_a.returncode == 0, log_a.read()[-3000:]
    a, b = tensors(a_dir), tensors(b_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume (killed at step {step_at_kill})"
    sa = torch.load(a_dir / "trainer_state.pt", weights_only=False)
    sb = torch.load(b_dir / "trainer_state.pt", weights_only=False)
    assert sa["step"] == sb["step"] == 30
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"]) and torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])
    assert json.load(open(b_dir / "args.json"))["step"] == 30
    steps = [json.loads(l)["step"] for l in open(b_dir / "log.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # the log continues, no step twice
    assert "saved to" in res.stdout

def test_keep_best_keeps_the_best_dev_model_across_a_resume(tiny_model, bios, tmp_path):
    """--keep_best: out_dir/best holds the model of the best dev exact match so far; a resumed run compares with that
    best, not with nothing (its first evaluation would replace a better model)."""
    out, qa = tmp_path / "run", bios / "qa.jsonl"
    argv = ["--init_from", tiny_model, "--data", qa, "--eval_qa", qa, "--out_dir", out, "--max_steps", 6,
            "--eval_every", 2, "--keep_best", "--batch_size", 4, *FAST]
    run("train.py", *argv)
    dev = [r["dev_exact_match"] for r in map(json.loads, open(out / "log.jsonl")) if "dev_exact_match" in r]
    best = json.load(open(out / "best" / "args.json"))
    assert len(dev) == 3 and best["metrics"]["dev_exact_match"] == max(dev)
    assert best["step"] == 2 * (dev.index(max(dev)) + 1)
    meta = json.load(open(out / "args.json"))
    assert meta["metrics"]["best_dev_exact_match"] == max(dev)
    # as if stopped at step 4 with a best better than any evaluation can give: steps 5-6 and the evaluation at 6
    # must keep it
    train.write_json(str(out / "args.json"), {**meta, "metrics": {"best_dev_exact_match": 2.0}})
    torch.save({**torch.load(out / "trainer_state.pt"), "step": 4}, out / "trainer_state.pt")
    assert "resuming from step 4 of 6" in run("train.py", *argv, "--resume").stdout
    assert json.load(open(out / "best" / "args.json")) == best
    assert json.load(open(out / "args.json"))["step"] == 6

def test_commit_drops_an_incomplete_checkpoint_and_moves_a_complete_one(tiny_model, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny_model, out)
    good = digest(out)
    nxt = out / ".next"
    nxt.mkdir()
    (nxt / "model.safetensors").write_bytes(b"truncated")
    (nxt / "trainer_state.pt").write_bytes(b"")
    train.commit(str(out))  # a kill before COMPLETE: the last good checkpoint stays
    assert not nxt.exists()
    assert digest(out) == good
    assert not (out / "COMPLETE").exists()
    # a kill after COMPLETE, during the moves: commit() finishes them
    nxt.mkdir()
    new_args = {"args": {}, "step": 7, "metrics": {}}
    (nxt / "args.json").write_text(json.dumps(new_args))
    (nxt / "extra.bin").write_bytes(b"x")
    (nxt / "COMPLETE").touch()
    train.commit(str(out))
    assert not nxt.exists()
    assert json.load(open(out / "args.json")) == new_args
    assert (out / "extra.bin").read_bytes() == b"x"
    assert not (out / "COMPLETE").exists()
    kept = ("model.safetensors", "trainer_state.pt")
    assert digest(out, kept) == {k: good[k] for k in kept}

def test_resume_without_a_checkpoint_is_an_error(bios, tmp_path, capsys):
    out = tmp_path / "none"
    code, _, err = main(capsys, "--data", bios / "qa.jsonl", "--out_dir", out, "--resume", "--max_steps", 2, *TINY)
    assert code == 2 and len(error_lines(err)) == 1 and "--resume" in err
    assert empty_or_absent(out)

class Tampered:
    """What a checkpoint from elsewhere could hold: an object whose unpickling calls a function (here one that
    makes a folder; it could as well run a shell)."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))

def test_resume_refuses_a_trainer_state_that_would_run_code(tiny_model, bios, tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "ran"
    argv = ["--init_from", tiny_model, "--data", bios / "qa.jsonl", "--out_dir", out, "--max_steps", 2,
            "--batch_size", 4, *FAST]
    assert main(capsys, *argv)[0] == 0
    state = torch.load(out / "trainer_state.pt")  # what train.py writes loads with weights_only (torch.load's default)
    assert state["step"] == 2 and state["optimizer"]["state"]
    torch.save({**state, "optimizer": Tampered(str(marker))}, out / "trainer_state.pt")
    before = digest(out, ("model.safetensors", "args.json"))
    code, _, err = main(capsys, *argv, "--max_steps", 4, "--resume")
    assert code == 2 and len(error_lines(err)) == 1 and "trainer_state.pt: refused" in err, err
    # nothing ran, nothing written
    assert not marker.exists() and digest(out, ("model.safetensors", "args.json")) == before

# -----------------------------------------------------------------------------
# bad input: one clear line on stderr, a non-zero exit, nothing written

@pytest.fixture
def qa_file(tmp_path):
    return write_jsonl(tmp_path / "qa.jsonl",
                       [{"id": "a", "question": "Where was Ada born?", "answer": "Eugene", "relation": "r"}])

def check_data_error(capsys, tmp_path, *argv, expect=()):
    out = tmp_path / "out"
    code, stdout, err = main(capsys, *argv, "--out_dir", out, "--max_steps", 2, *TINY, *FAST)
    lines = error_lines(err)
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    for e in expect:
        assert e in lines[0], (e, lines[0])
    assert empty_or_absent(out), os.listdir(out)
    return lines[0]

def test_missing_data_file(capsys, tmp_path):
    missing = tmp_path / "nope.jsonl"
    check_data_error(capsys, tmp_path, "--data", missing, expect=[str(missing), "no such file"])

def test_empty_data_file(capsys, tmp_path, qa_file):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    check_data_error(capsys, tmp_path, "--data", qa_file, empty, expect=[str(empty), "empty"])

def test_malformed_jsonl_names_file_and_line(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q1?", "answer": "A1"}\n\n{"question": "Q2?", "answer": \n')
    check_data_error(capsys, tmp_path, "--data", bad, expect=[f"{bad}:3:"])

def test_qa_line_missing_its_answer(capsys, tmp_path):
    bad = write_jsonl(tmp_path / "qa.jsonl",
                      [{"question": "Q1?", "answer": "A1"}, {"question": "Q2?", "relation": "r"}])
    check_data_error(capsys, tmp_path, "--data", bad, expect=[f"{bad}:2:", "answer"])

def test_bad_eval_qa_file_is_checked_before_training(capsys, tmp_path, qa_file):
    check_data_error(capsys, tmp_path, "--data", qa_file, "--eval_qa", tmp_path / "missing.jsonl",
                     expect=["missing.jsonl"])

def test_init_from_a_path_that_does_not_exist(tmp_path, qa_file):
    missing, out = tmp_path / "no_such_model", tmp_path / "out"
    res = run("train.py", "--init_from", missing, "--data", qa_file, "--out_dir", out, "--max_steps", 2, check=False)
    lines = error_lines(res.stderr)
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and str(missing) in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert empty_or_absent(out)

@pytest.mark.parametrize("argv,needle", [
    (["--dtype", "float8"], "--dtype"), (["--dtype", "float16"], "float16"), (["--batch_size", "0"], "--batch_size"),
    (["--grad_accum", "0"], "--grad_accum"), (["--max_steps", "0"], "--max_steps"), (["--aug", "0"], "--aug"),
    (["--lr", "fast"], "--lr"), (["--fsdp"], "torchrun")])
def test_bad_flag_values_are_argparse_errors(argv, needle, capsys, tmp_path, qa_file):
    out = tmp_path / "out"
    code, _, err = main(capsys, "--data", qa_file, "--out_dir", out, *argv)
    assert code == 2
    errors = [l for l in err.splitlines() if "error:" in l]
    assert len(errors) == 1 and needle in errors[0], err
    assert not out.exists()

def test_tokenizer_without_pad_token_still_trains(tiny_model, bios, tmp_path, capsys):
    from transformers import AutoTokenizer
    nopad = tmp_path / "nopad"
    shutil.copytree(tiny_model, nopad)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.pad_token = None
    tok.save_pretrained(nopad)
    assert AutoTokenizer.from_pretrained(nopad).pad_token_id is None  # the precondition really holds
    out = tmp_path / "out"
    code, stdout, err = main(capsys, "--init_from", nopad, "--data", bios / "docs.jsonl", bios / "qa.jsonl",
                             "--out_dir", out, "--max_steps", 3, "--batch_size", 8, "--warmup", 1,
                             "--eval_qa", bios / "qa.jsonl", *FAST)
    assert code == 0, err
    rows = [json.loads(l) for l in open(out / "log.jsonl")]
    assert all(map(lambda r: r["loss"] == r["loss"], rows))  # finite, not NaN
    model, tok2 = load_model(str(out))
    assert tok2.pad_token_id is not None

def test_sequences_longer_than_the_context_warn_and_train(tiny_model, tmp_path, capsys):
    from transformers import AutoConfig
    ctx = AutoConfig.from_pretrained(tiny_model).max_position_embeddings
    long_text = " ".join(f"Ada Lee visited the city of Eugene on day {i}." for i in range(ctx))
    docs = write_jsonl(tmp_path / "docs.jsonl", [{"id": "long", "text": long_text},
                                                 {"id": "short", "text": "Ada Lee was born in Eugene."}])
    qa = write_jsonl(tmp_path / "qa.jsonl", [
        {"id": "q", "question": "Which city? " * ctx, "answer": "Eugene", "relation": "r"},
        {"id": "q2", "question": "Which city was Ada Lee born in?", "answer": "Eugene", "relation": "r"}])
    out = tmp_path / "out"
    code, _, err = main(capsys, "--init_from", tiny_model, "--data", docs, qa, "--out_dir", out, "--max_steps", 2,
                        "--batch_size", 2, "--warmup", 1, *FAST)
    assert code == 0, err
    warnings = [l for l in err.splitlines() if "warning" in l.lower()]
    assert len(warnings) == 1 and "2 sequences" in warnings[0] and str(ctx) in warnings[0], err
    assert (out / "model.safetensors").exists()

def test_qa_prompt_longer_than_the_context_does_not_poison_training(tiny_model, tmp_path, capsys):
    """A QA item whose prompt alone fills the context loses its answer to truncation: it has no target
    token left. Alone in a global batch (--batch_size 1) it must not turn the loss into 0/0 = NaN: either
    training goes on (the item dropped or cut from the left) or one clear error before anything is written."""
    from transformers import AutoConfig
    ctx = AutoConfig.from_pretrained(tiny_model).max_position_embeddings
    qa = write_jsonl(tmp_path / "qa.jsonl", [
        {"id": "long", "question": "Which city? " * ctx, "answer": "Eugene", "relation": "r"},
        {"id": "short", "question": "Which city was Ada Lee born in?", "answer": "Eugene", "relation": "r"}])
    out = tmp_path / "out"
    code, _, err = main(capsys, "--init_from", tiny_model, "--data", qa, "--out_dir", out, "--max_steps", 4,
                        "--batch_size", 1, "--warmup", 1, "--log_every", 1, *FAST)
    if code == 0:
        rows = [json.loads(l) for l in open(out / "log.jsonl")]
        assert rows and all(r["loss"] == r["loss"] and abs(r["loss"]) != float("inf") for r in rows), rows
        assert "warning" in err
    else:
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and "context" in lines[0], err
        assert empty_or_absent(out)

def test_loss_nan_stops_and_keeps_the_last_good_checkpoint(tiny_model, bios, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--init_from", tiny_model, "--data", bios / "docs.jsonl", bios / "qa.jsonl", "--out_dir", out,
              "--batch_size", 4, "--warmup", 1, *FAST]
    code, _, err = main(capsys, *common, "--max_steps", 2, "--save_every", 2)
    assert code == 0, err
    good = digest(out)
    # continue with a learning rate that blows the weights up: the loss becomes NaN / inf within a few steps
    code, stdout, err = main(capsys, *common, "--max_steps", 20, "--resume", "--lr", "1e30", "--log_every", 1)
    lines = error_lines(err)
    assert code not in (0, None), err
    assert len(lines) == 1 and "loss" in lines[0] and str(out) in lines[0], err
    assert any(w in lines[0] for w in ("nan", "inf")), lines[0]
    assert digest(out) == good  # the last good checkpoint is intact
    assert not (out / ".next").exists()
    assert "saved to" not in stdout
    load_model(str(out))

# -----------------------------------------------------------------------------
# the default path end to end

@pytest.mark.slow
def test_default_run_end_to_end(tmp_path):
    out = tmp_path / "default"
    res = run("train.py", "--max_steps", 30, "--out_dir", out, timeout=1200)
    assert "test exact match" in res.stdout, res.stdout[-2000:]
    assert "test QA" in res.stdout and "dev QA" in res.stdout
    meta = json.load(open(out / "args.json"))
    assert meta["step"] == 30 and "test_exact_match" in meta["metrics"] and "dev_exact_match" in meta["metrics"]
    assert meta["args"]["init_from"] == "scratch"
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.num_hidden_layers == train.n_layer and model.config.hidden_size == train.n_embd
    assert tok.pad_token_id is not None
    assert os.path.exists(os.path.join(ROOT, "data", "bios", "qa.jsonl"))

def test_a_failing_final_evaluation_never_costs_the_run(tiny_model, bios, tmp_path, capsys, monkeypatch):
    """The final checkpoint is on disk before the final evaluation; an evaluation that raises (as eval.stop_ids
    did on MistralCommonBackend) is one line, exit code 4, and `--resume` retries it."""
    out = tmp_path / "out"
    common = ["--init_from", tiny_model, "--data", bios / "qa.jsonl", "--eval_qa", bios / "qa.jsonl", "--out_dir", out,
              "--max_steps", 3, "--batch_size", 4, "--warmup", 1, *FAST]

    def broken(*a, **k):
        raise NotImplementedError("convert_tokens_to_string")
    monkeypatch.setattr(train, "evaluate", broken)
    code, stdout, err = main(capsys, *common)
    assert code == 4, err
    assert "final evaluation failed" in err and str(out) in err
    meta = json.load(open(out / "args.json"))
    assert meta["step"] == 3 and "test_exact_match" not in meta["metrics"]
    assert torch.load(out / "trainer_state.pt", weights_only=False)["step"] == 3
    load_model(str(out))  # the model is whole
    monkeypatch.undo()
    code, stdout, err = main(capsys, *common, "--resume")
    assert code == 0, err
    assert "test_exact_match" in json.load(open(out / "args.json"))["metrics"] and "test exact match" in stdout

# -----------------------------------------------------------------------------
# Ctrl-C and SIGTERM: a checkpoint at the current step, one line on how to resume, a non-zero exit

@pytest.mark.slow
@pytest.mark.parametrize("ranks", [0, 2], ids=["1 process", "torchrun"])
def test_signal_checkpoints_and_resume_equals_uninterrupted(ranks, tiny_model, bios, tmp_path):
    """SIGINT (Ctrl-C: under torchrun the terminal signals the whole process group) and SIGTERM (a scheduler:
    the main process only) mid-run, with no --save_every: the run writes a checkpoint at the step it is
    in, says how to resume, exits non-zero; --resume then ends with the uninterrupted run's weights. One
    uninterrupted run A, and a run B per signal, all three side by side."""
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    launcher = [sys.executable] + (torchrun if ranks else [])
    def cmd(out, *extra):
        return launcher + train_cmd(tiny_model, bios, out, "--max_steps", "60", "--log_every", "1", *extra)[1:]
    run_a = subprocess.Popen(cmd(tmp_path / "A"), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    sigs = (signal.SIGINT, signal.SIGTERM)
    dirs = {sig: tmp_path / sig.name for sig in sigs}
    errs = {sig: open(tmp_path / f"{sig.name}.err", "w+") for sig in sigs}
    runs = {sig: subprocess.Popen(cmd(dirs[sig]), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=errs[sig],
                                  start_new_session=True)
            for sig in sigs}
    deadline, sent = time.time() + 300, set()
    try:
        while time.time() < deadline and len(sent) < len(sigs) and all(r.poll() is None for r in runs.values()):
            for sig in set(sigs) - sent:
                log = dirs[sig] / "log.jsonl"
                if log.exists() and len(log.read_text().splitlines()) >= 5:
                    os.killpg(runs[sig].pid, sig) if ranks and sig == signal.SIGINT else runs[sig].send_signal(sig)
                    sent.add(sig)
            time.sleep(0.01)
        for r in runs.values():
            r.wait(timeout=120)
    finally:
        for r in runs.values():
            if r.poll() is None:
                os.killpg(r.pid, signal.SIGKILL)
    steps = {}
    for sig in sigs:
        run_b, b_dir = runs[sig], dirs[sig]
        errs[sig].seek(0)
        err = errs[sig].read()
        assert run_b.returncode != 0, "run B finished before the signal: the test did not test it"
        if not ranks:
            assert run_b.returncode == 128 + sig, (run_b.returncode, err[-2000:])
        assert "Traceback" not in err.split("stopped by")[0], err[-3000:]
        lines = [l for l in err.splitlines() if "train.py: stopped by" in l]
        assert len(lines) == 1 and sig.name in lines[0] and "--resume" in lines[0], err[-3000:]
        steps[sig] = torch.load(b_dir / "trainer_state.pt")["step"]
        assert 5 <= steps[sig] < 60 and f"at step {steps[sig]} of 60" in lines[0]
    resumed = {sig: subprocess.Popen(cmd(dirs[sig], "--resume"), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
               for sig in sigs}  # both side by side
    assert run_a.wait(timeout=600) == 0
    a = tensors(tmp_path / "A")
    for sig in sigs:
        out, err = resumed[sig].communicate(timeout=600)
        assert resumed[sig].returncode == 0, err[-3000:]
        assert f"resuming from step {steps[sig]} of 60" in out
        step_at_stop, b = steps[sig], tensors(dirs[sig])
        for k in a:
            assert torch.equal(a[k], b[k]), f"{k} differs after a {sig.name} at step {step_at_stop}"

# -----------------------------------------------------------------------------
# what a newcomer meets first: --help, a mistyped model folder

@pytest.mark.parametrize("script", ["train.py", "eval.py", "probe.py", "gradual.py"])
def test_help_shows_every_default_without_loading_torch(script):
    res = subprocess.run([sys.executable, "-X", "importtime", os.path.join(ROOT, script), "--help"], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    # parsed before the heavy imports
    assert not any(l.split("|")[-1].strip() == "torch" for l in res.stderr.splitlines())
    if script == "train.py":
        for default in (f"(default: {train.max_steps})", f"(default: {train.lr})", f"(default: {train.batch_size})",
                        "(default: scratch)"):
            assert default in " ".join(res.stdout.split()), default
    if script == "gradual.py":  # the probe flags each say what they are, and train.py's pass-through flags are listed
        assert "train.py stage" in res.stdout and "--max_steps" in res.stdout and "--lr" in res.stdout
        assert res.stdout.count("probe.py:") >= 7 and "(default: 16)" in res.stdout

@pytest.mark.parametrize("offline", ["1", None])
def test_a_mistyped_model_folder_fails_at_once_offline_or_not(offline, tmp_path, qa_file):
    env = {k: v for k, v in ENV.items() if k != "HF_HUB_OFFLINE"} | ({"HF_HUB_OFFLINE": offline} if offline else {})
    res = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--init_from", "outt", "--data", str(qa_file),
                          "--out_dir", str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    lines = error_lines(res.stderr)
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "outt" in lines[0] and "no such model folder" in lines[0], res.stderr
    assert "Retrying" not in res.stderr and "Traceback" not in res.stderr

def test_replay_is_its_share_of_every_global_batch():
    ex, rep = examples_with_versions(10, 1), [[(("r", j), 0)] for j in range(7)]
    drawn = [batches.global_batch(ex, s, 8, 0, rep, 2) for s in range(14)]
    assert all(len(b) == 8 and sum(x[0][0] == "r" for x in b) == 2 for b in drawn)  # 2 of 8, every step
    main_stream = [x[0][0] for b in drawn for x in b if x[0][0] != "r"]
    # the same stream as without replay
    assert main_stream == [x[0][0] for s in range(14) for x in batches.global_batch(ex, s, 6, 0)]
    replayed = [x[0][1] for b in drawn for x in b if x[0][0] == "r"]
    # epochs over the replay pool
    assert sorted(replayed[:7]) == list(range(7)) and sorted(replayed[7:14]) == list(range(7))
    assert batches.global_batch(ex, 3, 8, 0) == batches.global_batch(ex, 3, 8, 0, rep, 0)

def test_sam_every_1_is_sam_and_2_lies_between(tiny_model, bios, tmp_path, capsys):
    common = ["--init_from", tiny_model, "--data", bios / "docs.jsonl", bios / "qa.jsonl", "--max_steps", 6,
              "--batch_size", 8, "--warmup", 1, "--lr", 3e-3, "--log_every", 1, *FAST]
    runs = {"sam": ["--sam"], "sam1": ["--sam", "--sam_every", 1], "sam2": ["--sam", "--sam_every", 2], "adamw": [],
            "replay": ["--replay", bios / "docs_para.jsonl", "--replay_ratio", 0.25]}
    w = {}
    for name, extra in runs.items():
        code, _, err = main(capsys, *common, *extra, "--out_dir", tmp_path / name)
        assert code == 0, err
        w[name] = tensors(tmp_path / name)
    assert all(torch.equal(w["sam"][k], w["sam1"][k]) for k in w["sam"])  # K = 1 is --sam, bitwise
    for other in ("sam", "adamw"):
        assert not all(torch.equal(w["sam2"][k], w[other][k]) for k in w["sam2"])
    rows = [json.loads(l) for l in open(tmp_path / "sam2" / "log.jsonl")]
    # SAM on steps 0, 2, 4 (logged as 1, 3, 5)
    assert [("loss_adv" in r) for r in rows] == [r["step"] % 2 == 1 for r in rows]
    assert not all(torch.equal(w["replay"][k], w["adamw"][k]) for k in w["adamw"])
