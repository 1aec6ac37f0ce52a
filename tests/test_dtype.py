"""--dtype {auto,float32,bfloat16} on train.py, eval.py, probe.py and gradual.py: what auto picks, that bf16 reaches
the model in every script (a tiny model, bf16 on the CPU), and that fp32 runs are unchanged wherever auto means fp32."""
import json

import pytest
import torch
from safetensors.torch import load_file

import model as model_py
from conftest import TINY, run

def test_auto_picks_bf16_only_where_it_is_native_and_pays(monkeypatch):
    assert model_py.pick_dtype("float32", "cpu", 4096)[0] == torch.float32
    assert model_py.pick_dtype("bfloat16", "cpu", 32)[0] == torch.bfloat16  # asked for: always
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True, "amx_bf16": False}, raising=False)
    assert model_py.pick_dtype("auto", "cpu", 576)[0] == torch.bfloat16
    dtype, why = model_py.pick_dtype("auto", "cpu", 128)  # the embedded default's width: stays fp32
    assert dtype == torch.float32 and "128-wide" in why
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "avx2": True}, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    dtype, why = model_py.pick_dtype("auto", "cpu", 4096)  # an older CPU: fp32, and the run says why
    assert dtype == torch.float32 and "no bf16" in why
    dtype, why = model_py.pick_dtype("bfloat16", "cpu", 4096)  # asked for there: bf16, and the run says it is slow
    assert dtype == torch.bfloat16 and "no bf16 natively: slow" in why

@pytest.fixture(scope="module")
def runs(tmp_path_factory, bios):
    """The same 4 steps of a tiny model: --dtype float32, auto (fp32 at this width) and bfloat16."""
    d = tmp_path_factory.mktemp("dtype")
    for name in ("float32", "auto", "bfloat16"):
        run("train.py", "--data", bios / "docs.jsonl", bios / "qa.jsonl", "--out_dir", d / name, "--max_steps", 4,
            "--batch_size", 8, "--warmup", 1, "--lr", 3e-3, "--dtype", name, *TINY)
    return d

def test_train_records_its_dtype_and_auto_is_bit_for_bit_fp32_here(runs):
    metrics = {n: json.load(open(runs / n / "args.json"))["metrics"] for n in ("float32", "auto", "bfloat16")}
    assert [metrics[n]["dtype"] for n in ("float32", "auto", "bfloat16")] == ["float32", "float32", "bfloat16"]
    w = {n: load_file(str(runs / n / "model.safetensors")) for n in ("float32", "auto", "bfloat16")}
    assert all(torch.equal(w["float32"][k], w["auto"][k]) for k in w["float32"])  # auto = fp32 at this width
    assert not all(torch.equal(w["float32"][k], w["bfloat16"][k]) for k in w["float32"])  # bf16 reached the math
    assert all(t.dtype == torch.float32 for t in w["bfloat16"].values())  # fp32 weights: autocast does the bf16

def test_eval_and_probe_run_in_the_dtype_asked_and_record_it(runs, bios, tmp_path):
    qa, model = bios / "qa.jsonl", runs / "float32"
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"eval_{dtype}.json"
        res = run("eval.py", "--model", model, "--qa", qa, "--split", "dev", "--dtype", dtype, "--out", out)
        assert json.load(open(out))["dtype"] == dtype and f"--dtype {dtype}" in res.stdout
        for fast in ([], ["--fast"]):
            out = tmp_path / f"probe_{dtype}{fast}.jsonl"
            run("probe.py", "--model", model, "--qa", qa, "--split", "dev", "--n_prompts", 2, "--samples", 2,
                "--dtype", dtype, "--out", out, *fast)
            assert {json.loads(line)["dtype"] for line in open(out)} == {dtype}

def test_gradual_passes_its_dtype_to_every_stage(runs, bios, tmp_path):
    out = tmp_path / "g"
    run("gradual.py", "--model", runs / "float32", "--qa", bios / "qa.jsonl", "--out_dir", out, "--stage_steps", 1,
        "--n_prompts", 2, "--samples", 2, "--fast", "--baseline", "all", "--dtype", "bfloat16", "--batch_size", 4)
    stages = open(out / "commands.sh").read().splitlines()
    assert stages and all("--dtype bfloat16" in line for line in stages), stages
