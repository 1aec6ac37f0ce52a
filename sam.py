"""
Sharpness-aware minimization (Foret et al. 2021; ASAM: Kwon et al. 2021) around any torch optimizer.
Standalone (torch only): copy this file into your project.

    optimizer = SAM(model.parameters(), torch.optim.AdamW, rho=0.05, lr=3e-4, weight_decay=0.1)
    for x, y in batches:
        loss_fn(model(x), y).backward()        # 1. gradient at w
        optimizer.first_step(zero_grad=True)   # 2. w <- w + e(w), e = rho * g / ||g||
        loss_fn(model(x), y).backward()        # 3. gradient at w + e, same batch
        optimizer.second_step(zero_grad=True)  # 4. w restored bitwise, base optimizer steps with it

Costs two forward-backward passes a step and one param-size buffer (the copy of w). Under DDP let step 1
all-reduce, so e comes from the global batch; under FSDP2 the norm is summed over all shards. Clip grads
after step 3 (the descent gradient) only. With dropout on, rho=0 is not exactly the base optimizer.
"""
import torch

class SAM(torch.optim.Optimizer):
    def __init__(self, params, base_optimizer_class=torch.optim.AdamW, rho=0.05, adaptive=False, eps=1e-12,
                 **base_optimizer_kwargs):
        if rho < 0:
            raise ValueError(f"rho must be non-negative, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **base_optimizer_kwargs))
        self.base_optimizer = base_optimizer_class(self.param_groups, **base_optimizer_kwargs)
        self.param_groups = self.base_optimizer.param_groups  # one set of groups: lr written here reaches the base
        self.eps = eps
        self.perturbed = []  # params moved by first_step, waiting for second_step

    @torch.no_grad()
    def grad_norm(self):
        """||g|| (or ||w * g|| for ASAM) over every param with a grad, on every rank when sharded."""
        squares, sharded = [], False
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad * p if group["adaptive"] else p.grad
                if hasattr(g, "to_local"):  # FSDP2 DTensor shard: sum the local part, all-reduce below
                    g, sharded = g.to_local(), True
                squares.append(g.to(torch.promote_types(g.dtype, torch.float32)).pow(2).sum())  # bf16 summed in fp32
        total = torch.stack(squares).sum() if squares else torch.zeros(())
        if sharded:
            torch.distributed.all_reduce(total)  # each rank holds a disjoint shard: squares add up
        return total.sqrt()

    @torch.no_grad()
    def first_step(self, zero_grad=False):
        """Move to w + e(w) (the approximate worst point within radius rho). Returns ||g||."""
        if self.perturbed:
            raise RuntimeError("first_step called twice without second_step")
        norm = self.grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (norm.item() + self.eps)  # a zero gradient moves nothing (0 * finite)
            for p in [p for p in group["params"] if p.grad is not None]:
                state = self.state[p]
                if "w" not in state:
                    state["w"] = torch.empty_like(p)  # the one extra param-size buffer, reused every step
                state["w"].copy_(p)
                p.add_(p.grad * scale * (p * p if group["adaptive"] else 1))  # ASAM: e = rho * w^2 * g / ||w * g||
                self.perturbed.append(p)
        if zero_grad:
            self.zero_grad()
        return norm

    @torch.no_grad()
    def second_step(self, zero_grad=False):
        """Restore w exactly (copy, not w + e - e), then step the base optimizer with the grad taken at w + e."""
        for p in self.perturbed:
            p.copy_(self.state[p]["w"])
        self.perturbed = []
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure):
        """Closure form, for compatibility: .grad holds the gradient at w; closure() recomputes loss.backward()."""
        self.first_step(zero_grad=True)
        torch.enable_grad()(closure)()
        self.second_step()

    def state_dict(self):
        if self.perturbed:
            raise RuntimeError("state_dict() between first_step and second_step: the weights are perturbed")
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups  # loading made new group dicts: share them again
