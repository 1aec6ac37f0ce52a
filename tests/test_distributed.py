"""train.py gives the same weights however a global batch is split: over micro-batches (gradient
accumulation), over ranks (torchrun, DDP on gloo) and over shards (FSDP2), with AdamW and with SAM, whose
ascent gradient must be that of the whole global batch (all micro-batches, all ranks), not of one rank's share.

Every run starts from one tiny model folder (the scratch tokenizer is trained per run, so runs from
scratch would not be comparable) and trains 24 steps at lr 3e-3 on the 30-person bios world. The runs
go two at a time in the background while the tests wait for the ones they compare.

Measured on 2 busy CPU cores (max over tensors of max|a - b| / max|a|, 24 steps):
    accumulation 2 vs a double micro-batch (SAM)       ~1e-5
    2 ranks DDP vs 1 rank with accumulation 2 (SAM)    ~3e-7   (AdamW: ~2e-7)
    2 ranks FSDP2 vs 1 rank with accumulation 2 (SAM)  ~2e-5
    rho 0.05 vs rho 0.04 (the negative control)        ~0.2
    SAM vs AdamW                                       ~0.45
so TOL = 1e-3 sits ~50x above the largest summation-order difference and ~200x below the control.
"""
import concurrent.futures
import os

import pytest
import torch

from conftest import run

pytestmark = pytest.mark.slow  # 7 training runs (3 under torchrun): 1.5-2 minutes on 2 cores

STEPS = 24
TOL = 1e-3
RUNS = {  # name: (torchrun ranks, flags)
    "sam_accum2": (0, ["--sam", "--batch_size", 4, "--grad_accum", 2]),
    "sam_batch8": (0, ["--sam", "--batch_size", 8, "--grad_accum", 1]),
    "sam_ddp2": (2, ["--sam", "--batch_size", 4, "--grad_accum", 1]),
    "sam_fsdp2": (2, ["--sam", "--fsdp", "--batch_size", 4, "--grad_accum", 1]),
    "adamw_accum2": (0, ["--batch_size", 4, "--grad_accum", 2]),
    "adamw_ddp2": (2, ["--batch_size", 4, "--grad_accum", 1]),
    "sam_rho0.04_accum2": (0, ["--sam", "--rho", 0.04, "--batch_size", 4, "--grad_accum", 2]),
}

class Runs:
    """The training runs, started in the background; weights(name) waits for one and loads its weights."""
    def __init__(self, bios, init, root):
        common = ["--init_from", init, "--data", bios / "docs.jsonl", bios / "qa.jsonl", "--max_steps", STEPS,
                  "--lr", 3e-3, "--warmup", 1, "--save_every", 0, "--peak_tflops", 1, "--log_every", 1000]
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.futures = {name: self.pool.submit(self._train, common + flags + ["--out_dir", root / name], ranks)
                        for name, (ranks, flags) in RUNS.items()}
        self.cache = {}

    @staticmethod
    def _train(args, ranks):
        run("train.py", *args, torchrun=ranks)
        return args[-1]

    def weights(self, name):
        if name not in self.cache:
            from safetensors.torch import load_file
            out = self.futures[name].result()
            w = load_file(os.path.join(out, "model.safetensors"))
            if "lm_head.weight" in w and "model.embed_tokens.weight" in w:  # FSDP2 runs save the tied
                assert torch.equal(w.pop("lm_head.weight"), w["model.embed_tokens.weight"])  # matrix twice
            self.cache[name] = w
        return self.cache[name]

@pytest.fixture(scope="module")
def runs(bios, tiny_model, tmp_path_factory):
    r = Runs(bios, tiny_model, tmp_path_factory.mktemp("distributed"))
    yield r
    r.pool.shutdown(wait=True, cancel_futures=True)

def max_rel_diff(a, b):
    """max over tensors of max|a - b| / max|a|."""
    assert a.keys() == b.keys() and len(a) > 10
    return max(((a[k] - b[k]).abs().max() / a[k].abs().max()).item() for k in a)

def compare(runs, x, y):
    d = max_rel_diff(runs.weights(x), runs.weights(y))
    print(f"\n{x} vs {y}: max relative difference {d:.2e} (tolerance {TOL:g})")
    return d

def test_runs_trained_from_the_same_model(runs, tiny_model):
    from safetensors.torch import load_file
    init = load_file(os.path.join(tiny_model, "model.safetensors"))
    d = compare(runs, "sam_accum2", "adamw_accum2")
    assert max_rel_diff(runs.weights("sam_accum2"), init) > 0.1  # 24 steps moved the weights a lot
    assert d > 0.05  # and SAM is not AdamW

def test_accumulation_equals_a_double_micro_batch_sam(runs):
    assert compare(runs, "sam_accum2", "sam_batch8") < TOL

def test_ddp_equals_accumulation_sam(runs):
    assert compare(runs, "sam_ddp2", "sam_accum2") < TOL

def test_ddp_equals_accumulation_adamw(runs):
    assert compare(runs, "adamw_ddp2", "adamw_accum2") < TOL

def test_fsdp_equals_accumulation_sam(runs):
    assert compare(runs, "sam_fsdp2", "sam_accum2") < TOL

def test_negative_control_a_small_change_of_rho_exceeds_the_tolerance(runs):
    """rho 0.04 instead of 0.05 is a far smaller change than a wrong SAM semantics (perturbing per
    micro-batch or per rank), and still lands far outside the tolerance: the tests above can fail."""
    assert compare(runs, "sam_accum2", "sam_rho0.04_accum2") > 20 * TOL
