"""
Low-rank adapters (LoRA, Hu et al. 2021) in plain torch: each chosen linear layer computes W x + B A x * alpha / r
with W frozen, A random and B zero, so the wrapped model is the original one at step 0. Standalone (torch
only): copy this file into your project.

    from lora import add_lora, merge_lora
    add_lora(model, r=16, alpha=32)      # default: the attention and MLP projections of Llama / Qwen / Mistral / GPT-2
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)  # adapter-sized state
    ...                                  # train as usual (SAM too: it perturbs only what has a gradient)
    merge_lora(model)                    # W += B A alpha / r: plain layers again, save_pretrained as usual

merged_state_dict(model) gives the merged model's state dict (also from a gathered FSDP one) without touching
the model. GPT-2's Conv1D layers (weight stored as in x out) are wrapped like nn.Linear.
"""
import math
import re

import torch

# module names, matched at the end
TARGETS = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|c_attn|c_proj|c_fc)$"

class LoRALinear(torch.nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale = base, alpha / r
        self.transposed = type(base).__name__ == "Conv1D"  # transformers' GPT-2 layer: y = x W + b, W is in x out
        n_in, n_out = base.weight.shape[::-1] if not self.transposed else base.weight.shape
        self.lora_A = torch.nn.Parameter(torch.empty(r, n_in, dtype=base.weight.dtype, device=base.weight.device))
        self.lora_B = torch.nn.Parameter(torch.zeros(n_out, r, dtype=base.weight.dtype, device=base.weight.device))
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear's own init; B = 0 makes the update 0

    def forward(self, x):
        return self.base(x) + (x.to(self.lora_A.dtype) @ self.lora_A.T @ self.lora_B.T * self.scale).to(x.dtype)

    def delta(self):  # the update in the base weight's layout
        d = self.lora_B @ self.lora_A * self.scale
        return d.T if self.transposed else d

def add_lora(model, r=16, alpha=32, targets=TARGETS):
    """Freeze every parameter, wrap the modules whose name matches `targets`; returns the wrapped names."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = [n for n, m in model.named_modules()
             if re.search(targets, n) and hasattr(m, "weight") and m.weight.dim() == 2]
    if not names:
        raise ValueError(f"no linear layer matches {targets!r}")
    for name in names:
        parent, _, child = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        setattr(holder, child, LoRALinear(getattr(holder, child), r, alpha))
    return names

@torch.no_grad()
def merge_lora(model):
    """Fold every update into its base weight and put the plain layer back (in place); returns the model."""
    for name, m in [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]:
        m.base.weight += m.delta().to(m.base.weight.dtype)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, m.base)
    return model

@torch.no_grad()
def merged_state_dict(model, state_dict=None):
    """The merged model's state dict (the original parameter names), the model left as it is. `state_dict`: the
    wrapped model's, if not model.state_dict() (a full state dict gathered from FSDP shards, say)."""
    sd = dict(model.state_dict() if state_dict is None else state_dict)
    for name, m in model.named_modules():
        if isinstance(m, LoRALinear):
            p = name + "."
            a, b = sd.pop(p + "lora_A"), sd.pop(p + "lora_B")
            d = b.float() @ a.float() * m.scale
            for k in [k for k in sd if k.startswith(p + "base.")]:
                sd[p + k[len(p + "base."):]] = sd.pop(k)
            # on the CPU: merging every layer of a 7B model on the GPU would hold a second copy of its weights there
            w = sd[p + "weight"]
            sd[p + "weight"] = (w.float() + (d.T if m.transposed else d)).to("cpu", w.dtype)
    return sd
