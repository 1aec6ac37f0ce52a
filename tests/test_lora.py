"""lora.py and train.py --lora: identity at step 0, only adapters (and chosen tensors) change, merged equals
unmerged, SAM + LoRA against an independent computation, DDP equals accumulation, resume after an interrupt
equals an uninterrupted run, and a --lora run overfits six facts."""
import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import lora
from conftest import ENV, ROOT, run
from sam import SAM
from trained_facts import facts_file, one_thread

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield

def tiny(kind):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=2,
                                            bos_token_id=0, eos_token_id=1)).eval()
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2,
                                      bos_token_id=0, eos_token_id=1)).eval()

def tensors(path):
    from safetensors.torch import load_file
    return load_file(os.path.join(path, "model.safetensors"))

@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_identity_at_step_0_then_merged_equals_unmerged(kind):
    model = tiny(kind)
    x = torch.randint(0, 64, (3, 9))
    before = model(x).logits
    names = lora.add_lora(model, r=4, alpha=8)
    # q k v o gate up down (Llama), c_attn c_proj c_fc c_proj (GPT-2), 2 layers
    assert len(names) == (14 if kind == "llama" else 8)
    assert torch.equal(model(x).logits, before)  # B = 0
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n for n in trainable)
    for m in model.modules():
        if isinstance(m, lora.LoRALinear):
            torch.nn.init.normal_(m.lora_B, std=0.5)
    wrapped = model(x).logits
    assert not torch.allclose(wrapped, before, atol=1e-3)
    fresh = tiny(kind)
    assert fresh.load_state_dict(lora.merged_state_dict(model)).missing_keys == []  # the original names
    assert torch.allclose(fresh(x).logits, wrapped, atol=1e-5)
    lora.merge_lora(model)
    assert not any(isinstance(m, lora.LoRALinear) for m in model.modules())
    assert torch.allclose(model(x).logits, wrapped, atol=1e-5)
    assert set(model.state_dict()) == set(fresh.state_dict())

def test_no_matching_layer_is_an_error():
    with pytest.raises(ValueError, match="no linear layer"):
        lora.add_lora(tiny("llama"), targets=r"nothing_like_this$")

def test_sam_with_lora_matches_an_independent_computation():
    """SAM perturbs and restores only what trains (the adapters); the frozen weights never move, not even
    between the two passes. The reference: the same step written out by hand, torch.optim.AdamW on copies."""
    model = tiny("llama")
    lora.add_lora(model, r=4, alpha=8)
    for m in model.modules():
        if isinstance(m, lora.LoRALinear):
            torch.nn.init.normal_(m.lora_B, std=0.1)
    ref = copy.deepcopy(model)
    x = torch.randint(0, 64, (4, 10))
    def loss_fn(mdl):
        return mdl(input_ids=x, labels=x).loss
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    rho, lr = 0.05, 1e-2
    params = [p for p in model.parameters() if p.requires_grad]
    opt = SAM(params, torch.optim.AdamW, rho=rho, lr=lr, weight_decay=0.0)
    seen = {}
    def record(module, args, output):  # the frozen weight as each forward pass sees it
        seen[len(seen)] = module.weight.clone()
    hook = model.model.layers[0].self_attn.q_proj.base.register_forward_hook(record)
    loss_fn(model).backward()
    opt.first_step(zero_grad=True)
    loss_fn(model).backward()
    opt.second_step(zero_grad=True)
    hook.remove()
    assert torch.equal(seen[0], seen[1])  # the frozen weight was the same in both passes
    # by hand
    rparams = [p for p in ref.parameters() if p.requires_grad]
    loss_fn(ref).backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in rparams))
    saved = [p.detach().clone() for p in rparams]
    with torch.no_grad():
        for p in rparams:
            p.add_(p.grad * rho / (norm + 1e-12))
    for p in rparams:
        p.grad = None
    loss_fn(ref).backward()
    with torch.no_grad():
        for p, w in zip(rparams, saved):
            p.copy_(w)
    torch.optim.AdamW(rparams, lr=lr, weight_decay=0.0).step()
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n

# -----------------------------------------------------------------------------
# train.py --lora

def lora_run(init, data, out, *extra, steps=6):
    return ["train.py", "--init_from", init, "--data", data, "--out_dir", out, "--max_steps", steps, "--batch_size", 8,
            "--warmup", 1, "--lr", 3e-3, "--lora", 4, "--peak_tflops", 1, "--log_every", 1, *extra]

def test_a_lora_step_changes_only_the_adapted_layers(tiny_model, bios, tmp_path):
    init = tensors(tiny_model)
    for extra, changes_embeddings in (([], False), (["--lora_embeddings", "--sam"], True)):
        out = tmp_path / ("emb" if extra else "plain")
        run(*lora_run(tiny_model, bios / "qa.jsonl", out, *extra, steps=2))
        after = tensors(out)
        assert after.keys() == init.keys()  # the merged model, under the original names
        projections = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        adapted = {k for k in init if any(f"{t}.weight" in k for t in projections)}
        for k in init:
            changed = not torch.equal(init[k], after[k])
            expect = k in adapted or (changes_embeddings and "embed_tokens" in k)
            assert changed == expect, (k, extra)
        state = torch.load(out / "trainer_state.pt", weights_only=False)
        from safetensors.torch import load_file
        adapters = load_file(out / "lora.safetensors")
        n_state = sum(v.numel() for st in state["optimizer"]["state"].values() for v in st.values()
                      if torch.is_tensor(v) and v.dim())
        assert n_state == 2 * sum(v.numel() for v in adapters.values())  # AdamW's two moments, adapter-sized
        assert ("model.embed_tokens.weight" in adapters) == changes_embeddings

@pytest.mark.slow
def test_lora_resume_after_an_interrupt_equals_uninterrupted(tiny_model, bios, tmp_path):
    def cmd(out, *e):
        args = lora_run(tiny_model, bios / "qa.jsonl", out, *e, steps=200)[1:]
        return [sys.executable, os.path.join(ROOT, "train.py")] + [str(a) for a in args]
    a = subprocess.Popen(cmd(tmp_path / "A", "--sam"), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    b = subprocess.Popen(cmd(tmp_path / "B", "--sam"), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    log, deadline = tmp_path / "B" / "log.jsonl", time.time() + 300
    while time.time() < deadline and b.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 5:
            b.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    _, err = b.communicate(timeout=120)
    assert b.returncode == 130 and "--resume" in err, err[-2000:]
    step = torch.load(tmp_path / "B" / "trainer_state.pt", weights_only=False)["step"]
    assert 5 <= step < 200
    res = subprocess.run(cmd(tmp_path / "B", "--sam", "--resume"), cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0 and f"resuming from step {step}" in res.stdout, res.stderr[-2000:]
    assert a.wait(timeout=600) == 0
    wa, wb = tensors(tmp_path / "A"), tensors(tmp_path / "B")
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k

@pytest.mark.slow
def test_lora_ddp_equals_accumulation(tiny_model, bios, tmp_path):
    common = lora_run(tiny_model, bios / "qa.jsonl", "X", "--sam", steps=12)[1:]
    out = {}
    for name, ranks, flags in (("accum2", 0, ["--batch_size", 4, "--grad_accum", 2]), ("ddp2", 2, ["--batch_size", 4]),
                               ("fsdp2", 2, ["--batch_size", 4, "--fsdp"])):
        args = [a if a != "X" else tmp_path / name for a in common] + flags
        run("train.py", *args, torchrun=ranks)
        out[name] = tensors(tmp_path / name)
    for other in ("ddp2", "fsdp2"):
        d = max(((out[other][k] - out["accum2"][k]).abs().max() / out["accum2"][k].abs().max()).item()
                for k in out["accum2"])
        assert d < 1e-3, (other, d)

@pytest.mark.slow
def test_a_lora_run_overfits_six_facts(tmp_path_factory, tmp_path):
    """LoRA on a trained tiny model (the default world's, 60 steps) learns six made-up facts to 100% exact match,
    with the embeddings training too, as Physics of LMs 3.1 tunes them (the adapters alone learn slowly on a model
    this small: loss 9.3 -> 4.0 in 150 steps, where full fine-tuning reaches 0.001)."""
    base = tmp_path / "base"
    run("train.py", "--max_steps", 60, "--out_dir", base, "--peak_tflops", 1,
        "--n_layer", 2, "--n_embd", 64, "--n_head", 2)
    qa = facts_file(str(tmp_path_factory.getbasetemp()))
    out = tmp_path / "lora"
    run("train.py", "--init_from", base, "--data", qa, "--eval_qa", qa, "--out_dir", out, "--max_steps", 150,
        "--batch_size", 6, "--lr", 1e-2, "--warmup", 10, "--lora", 16, "--lora_alpha", 32, "--lora_embeddings",
        "--peak_tflops", 1)
    meta = json.load(open(out / "args.json"))
    assert meta["metrics"]["all_exact_match"] == 1.0, meta["metrics"]
    res = run("eval.py", "--model", out, "--qa", qa)  # the merged folder loads like any model
    assert "exact match 100.0%" in res.stdout

def test_training_state_is_adapter_sized(tiny_model):
    """bench.py's count of the training state (weights, grads, AdamW moments, SAM's copy of w): 16 bytes a parameter
    for full AdamW and 20 with SAM; with LoRA 4 bytes a frozen weight and 16 (20) a trainable one, so the optimizer
    state and SAM's copy are adapter-sized."""
    import bench
    from model import load_model
    model, _ = load_model(str(tiny_model))
    n_all = sum(p.numel() for p in model.parameters())  # a tied lm_head counted once, as by storage
    lora.add_lora(model, 16)
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < n_lora < n_all
    mb = {(r, sam): bench.state_mb(str(tiny_model), r, sam, "cpu") * 2**20 for r in (0, 16) for sam in (False, True)}
    assert mb[0, False] == 16 * n_all and mb[0, True] == 20 * n_all
    assert mb[16, False] == 4 * (n_all + n_lora) + 12 * n_lora and mb[16, True] == mb[16, False] + 4 * n_lora
