"""
Decoding with a KV cache, what eval.py and probe.py ask a model with: greedy and sampled continuations of a batch of
prompts that may share a few-shot prefix (its cache computed once), cut at the first newline; and the exact check,
by one teacher-forced pass, of whether greedy decoding gives a gold answer, with the probability that sampling does.

    from decode import generate, score_gold
    answers = generate(model, tokenizer, ["Question: Which city was Anna born in?\nAnswer:"])
    greedy, prob = score_gold(model, tokenizer, prompts, golds, temperature=0.5, top_k=40)
"""
import copy
import functools
import inspect

import torch

from augment import qa_completion
from data import encode_pair

@functools.lru_cache(maxsize=8)
def stop_ids(tokenizer):
    """Every token whose text holds a newline, and eos: generation of an answer ends at any of them. Each id is
    decoded alone (every tokenizer backend can do that, MistralCommonBackend included); cached per tokenizer."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    return frozenset(i for i, t in enumerate(texts) if "\n" in t) | eos

def cache_kwarg(model):
    """The name of the KV-cache argument and output: transformers 5.x renamed `past_key_values` to `cache`;
    requirements.txt admits versions on both sides of the rename."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

# -----------------------------------------------------------------------------
# generation

def left_pad(rows, pad_id, device):
    n = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (n - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask

@torch.no_grad()
def decode(model, ids, mask, stops, max_new_tokens=24, temperature=0.0, top_k=0, past=None, generator=None, n=1):
    """Continue each row of a left-padded batch `n` times (rows i*n .. i*n+n-1 of the result continue row i).
    temperature: a float, or one per result row (0: greedy). With `past` (the KV cache of a shared prefix,
    already expanded to the batch) `mask` covers prefix + rows. Returns each result row's new token ids,
    cut before its first stop token. The prompts are run once, then their cache is copied n times."""
    temperature = torch.as_tensor(temperature, dtype=torch.float, device=ids.device).expand(ids.shape[0] * n)
    stop_t = torch.tensor(sorted(stops), device=ids.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
    alive = torch.arange(ids.shape[0] * n, device=ids.device)  # result rows still generating
    tokens = torch.full((ids.shape[0] * n, max_new_tokens), -1, dtype=torch.long, device=ids.device)
    cache = cache_kwarg(model)
    for t in range(max_new_tokens):
        o = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                  **{cache: past})
        past, logits = getattr(o, cache), o.logits[:, -1].float()
        if t == 0 and n > 1:  # one prefill per prompt, then n copies of its cache
            past.batch_repeat_interleave(n)
            logits, mask, positions = (x.repeat_interleave(n, dim=0) for x in (logits, mask, positions))
        nxt = logits.argmax(-1)
        hot = temperature > 0
        if hot.any():
            scaled = logits[hot] / temperature[hot, None]
            # sample among the top k only
            vals, idx = scaled.topk(min(top_k or scaled.shape[-1], scaled.shape[-1]), dim=-1)
            nxt[hot] = idx.gather(1, torch.multinomial(vals.softmax(-1), 1, generator=generator)).squeeze(-1)
        tokens[alive, t] = nxt
        going = ~torch.isin(nxt, stop_t)
        if not going.any():  # one host sync a token; answers are short
            break
        if not going.all():  # drop finished rows: the rest of the batch gets cheaper
            keep = going.nonzero().flatten()
            past.batch_select_indices(keep)
            alive, nxt, mask, positions, temperature = (x[keep] for x in (alive, nxt, mask, positions, temperature))
        ids, positions = nxt[:, None], positions[:, -1:] + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    out = []
    for row in tokens.tolist():
        cut = next((j for j, t in enumerate(row) if t in stops or t < 0), len(row))
        out.append(row[:cut])
    return out

@torch.no_grad()
def prefix_cache(model, prefix_ids):
    """The KV cache of a shared prefix (few-shot exemplars), computed once, batch of one."""
    cache = cache_kwarg(model)
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([list(prefix_ids)], device=device), use_cache=True, logits_to_keep=1)
    return getattr(out, cache)  # (its logits unused)

def generate(model, tokenizer, prompts, batch_size=64, max_new_tokens=24, chat=False, bar=None, prefix=()):
    """Greedy answers (text before the first newline) for a list of prompt strings. With `prefix` (token ids of
    few-shot exemplars, BOS first) every prompt continues one KV cache of it, as probe.py asks."""
    stops, answers, device = stop_ids(tokenizer), [None] * len(prompts), next(model.parameters()).device
    past = prefix_cache(model, prefix) if prefix else None
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths, less padding
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        rows = [encode_pair(tokenizer, prompts[i], "", chat, bos=not prefix)[0] for i in idx]  # [BOS] + prompt
        ids, mask = left_pad(rows, tokenizer.pad_token_id, device)
        cache = copy.deepcopy(past)  # (None without a prefix) a copy of its cache per batch: decoding appends to it
        if past is not None:
            cache.batch_repeat_interleave(len(idx))
            mask = torch.cat([torch.ones(len(idx), len(prefix), dtype=mask.dtype, device=device), mask], dim=1)
        for i, toks in zip(idx, decode(model, ids, mask, stops, max_new_tokens, past=cache)):
            answers[i] = tokenizer.decode(toks, skip_special_tokens=True).split("\n")[0].strip()
        if bar is not None:
            bar.update(len(idx))
    return answers

@torch.no_grad()
def score_gold(model, tokenizer, prompts, golds, batch_size=64, temperature=1.0, top_k=0, prefix=None, chat=False,
               bar=None):
    """One teacher-forced pass per (prompt, gold answer): does greedy decoding produce exactly the gold tokens
    and then the newline (argmax at every position), and what is the probability that sampling at
    `temperature` / `top_k` does. The fast, exact path. With `prefix` (token ids of few-shot exemplars, BOS
    first) every row continues one KV cache of it, computed once, as the generation path does."""
    device, greedy, prob = next(model.parameters()).device, [0] * len(prompts), [0.0] * len(prompts)
    past, n_prefix = prefix_cache(model, prefix) if prefix else None, len(prefix or ())
    encoded = [encode_pair(tokenizer, p, qa_completion(g), chat, bos=not prefix) for p, g in zip(prompts, golds)]
    batches = []  # by length, cut where rows grow by a quarter: padding was 44% of the work on EntityQuestions
    for i in sorted(range(len(encoded)), key=lambda i: len(encoded[i][0])):
        if not batches or len(batches[-1]) == batch_size or len(encoded[i][0]) > 1.25 * len(encoded[batches[-1][0]][0]):
            batches.append([])
        batches[-1].append(i)
    for idx in batches:
        rows = [encoded[i] for i in idx]
        n = max(len(r) for r, _ in rows)
        ids = torch.tensor([r + [tokenizer.pad_token_id] * (n - len(r)) for r, _ in rows], device=device)  # right pad
        lengths, starts = torch.tensor([[len(r), k] for r, k in rows], device=device).T[..., None]  # (rows, 1) each
        at = torch.arange(n, device=device)
        targets = torch.where((at[1:] >= starts) & (at[1:] < lengths), ids[:, 1:], -100)  # gold tokens, where predicted
        keep = (targets != -100).any(0).nonzero().flatten()  # logits only where a gold token is predicted
        mask = torch.cat([at.new_ones(len(rows), n_prefix), (at < lengths).long()], dim=1)  # prefix + rows
        cache, kw = copy.deepcopy(past), {}  # a copy of the prefix's cache per batch: the forward appends to it
        if past is not None:
            cache.batch_repeat_interleave(len(rows))
            kw = {cache_kwarg(model): cache, "position_ids": n_prefix + at.expand(len(rows), n)}
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep, use_cache=past is not None, **kw)
        logits, targets = logits.logits.float(), targets[:, keep]
        valid, gold = targets != -100, targets.clamp(min=0)
        hit = ((logits.argmax(-1) == gold) | ~valid).all(1)
        scaled = logits / temperature
        if top_k:
            kth = scaled.topk(min(top_k, scaled.shape[-1]), -1).values[..., -1:]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        logp = scaled.log_softmax(-1).gather(-1, gold[..., None]).squeeze(-1).masked_fill(~valid, 0.0)
        for i, g, p in zip(idx, hit.tolist(), logp.sum(1).exp().tolist()):  # per-row reductions on the device
            greedy[i], prob[i] = g, p
        if bar is not None:
            bar.update(len(rows))
    return greedy, prob
