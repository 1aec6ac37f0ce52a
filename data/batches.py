"""
train.py's examples and batches: documents and QA items as token ids with the spans that carry loss
(load_examples), the global batch of a step from an endless stream of shuffled epochs (global_batch), and
this rank's micro-batches of it, packed or padded (micro_batches).

    import train
    from data import read_examples
    from data.batches import global_batch, load_examples, micro_batches
    from model import load_model
    args = train.get_args(["--aug", "2"])   # what load_examples reads: --aug, --qa_aug, --qa_pack, --seed, --chat
    model, tok = load_model("out")          # the model `python train.py` saved
    examples = load_examples(args, [read_examples("data/bios/docs.jsonl")], tok, 512, True)
    inputs, labels = micro_batches(global_batch(examples, 0, 48, seed=0), 2, 0, 1, tok.pad_token_id, "cpu")[0]
"""
import functools
import random
import sys

from augment import format_variants, qa_completion
from data import encode_doc, encode_pair, encode_qa_sequence, make_prompt

# -----------------------------------------------------------------------------
# training examples: an example is a list of versions (formats, paraphrases); a version is (token ids, spans), where the
# spans (start, end) are the positions that carry loss: all of a document, the answer of a QA item

def load_examples(args, files, tokenizer, max_len, master_process):
    """Examples as lists of versions. Documents whose ids agree before a '#' (p7, p7#para0, p7#fmt3: the
    paraphrases of prepare.py, an augment.py output) are versions of one document, each in --aug formats;
    a QA item has --qa_aug prompt formats. Each pass over an example uses its next version, so arms with
    more versions see the same number of examples per step as the baseline."""
    groups, qa = {}, []
    for f, (kind, items) in enumerate(files):
        for it in items:
            if kind == "docs":
                texts = format_variants(it["text"], args.aug, list(it.get("facts", {}).values()), args.seed)
                groups.setdefault(it["id"].split("#")[0], []).extend(
                    (ids, ((0, len(ids)),)) for ids in (encode_doc(tokenizer, t) for t in texts))
            else:
                qa.append([(make_prompt(tokenizer, it["question"], k, args.chat), qa_completion(it["answer"]))
                           for k in range(args.qa_aug)])
    if args.qa_pack > 1:  # QA items end to end after one BOS, exactly as probe.py builds a few-shot prompt;
        packings = []      # 8 different packings are the versions, so each pass puts an item among others
        for v in range(8):
            order = list(range(len(qa)))
            random.Random(args.seed * 1000 + v).shuffle(order)
            packings.append([encode_qa_sequence(tokenizer, [qa[i][v % len(qa[i])] for i in order[j:j + args.qa_pack]])
                             for j in range(0, len(qa), args.qa_pack)])
        qa = [list(versions) for versions in zip(*packings)]
    else:
        qa = [[(ids, ((n, len(ids)),)) for ids, n in (encode_pair(tokenizer, p, c, args.chat) for p, c in ex)]
              for ex in qa]
    n_cut = sum(len(ids) > max_len for ex in list(groups.values()) + qa for ids, _ in ex)
    if n_cut and master_process:
        print(f"warning: {n_cut} sequences longer than the context ({max_len} tokens) were truncated", file=sys.stderr)
    # a document loses its end, a QA sequence its start (the answer must survive)
    docs = [[(ids[:max_len], ((0, min(len(ids), max_len)),)) for ids, _ in ex] for ex in groups.values()]
    def cut(ids):
        return max(0, len(ids) - max_len)
    qa = [[(ids[cut(ids):], tuple((max(0, s - cut(ids)), e - cut(ids)) for s, e in spans)) for ids, spans in ex]
          for ex in qa]
    return docs + qa

@functools.lru_cache(maxsize=4)
def epoch_order(n, seed, epoch):
    order = list(range(n))
    random.Random(seed * 100003 + epoch).shuffle(order)
    return order

def global_batch(examples, step, size, seed, replay=(), n_replay=0):
    """The examples of a step: positions [step*size, (step+1)*size) of an endless stream of shuffled
    epochs; an example's format is chosen by the epoch, so every pass over a document shows the next one.
    With `replay`, n_replay of the size come from a second such stream over the replay examples."""
    batch = []
    for pool, n, sd in ((examples, size - n_replay, seed), (replay, n_replay, seed + 1)):
        for q in range(step * n, (step + 1) * n):
            epoch, i = divmod(q, len(pool))
            j = epoch_order(len(pool), sd, epoch)[i]
            batch.append(pool[j][(epoch + j) % len(pool[j])])
    return batch

def micro_batches(batch, n_micro, rank, world_size, pad_id, device, pack=2.0):
    """This rank's n_micro micro-batches of the global batch (world_size * n_micro micro-batches of as many
    examples), each one forward. pack > 0: examples end to end in rows of `pack` x the longest example
    (padding-free packing), unless padding would add under a quarter to the tokens (documents of similar
    lengths: bench.py measured padding faster there, the packed mask costing more than it saves); pack = 0:
    one example a row, padded on the right. Labels are -100 on a prompt, the padding, and (packed) the first
    token of each example."""
    batch = sorted(batch, key=lambda x: -len(x[0]))  # similar lengths in a micro-batch: less padding
    size = len(batch) // (n_micro * world_size)
    chunks = [batch[j * size:(j + 1) * size] for j in range(n_micro * world_size)][rank::world_size]
    def wasteful(c):  # (sorted: c[0] is the longest)
        return len(c) * len(c[0][0]) > 1.25 * sum(len(x) for x, _ in c)
    return [pack_rows(c, pad_id, device, pack) if pack and wasteful(c) else collate(c, pad_id, device) for c in chunks]

def pack_rows(rows, pad_id, device, pack):
    """Examples end to end (first fit, longest first) with position ids restarting at 0 for each and no
    attention mask: transformers then builds a block-diagonal causal mask from the position ids (sdpa,
    eager) or runs varlen flash-attention, so no example sees another. A mask or a KV cache would silently
    turn that off (train.py passes neither and checks the model once: packing_isolates)."""
    import torch  # (imported where used: the scripts parse their flags, with Help, before torch loads)
    cap = max(len(ids) for ids, _ in rows) * pack
    bins = []  # [tokens used, examples]
    for ex in rows:
        b = next((b for b in bins if b[0] + len(ex[0]) <= cap), None)
        if b is None:
            bins.append(b := [0, []])
        b[0] += len(ex[0])
        b[1].append(ex)
    n = max(used for used, _ in bins)
    ids = torch.full((len(bins), n), pad_id, dtype=torch.long)
    pos = torch.zeros((len(bins), n), dtype=torch.long)
    labels = torch.full((len(bins), n), -100, dtype=torch.long)
    for r, (used, exs) in enumerate(bins):
        o = 0
        for x, spans in exs:
            ids[r, o:o + len(x)], pos[r, o:o + len(x)] = torch.tensor(x), torch.arange(len(x))
            for s, e in spans:  # loss masking; an example's first token is never a target (no context of its own)
                labels[r, o + max(s, 1):o + e] = torch.tensor(x[max(s, 1):e])
            o += len(x)
        pos[r, o:] = torch.arange(n - o)  # the padding at a row's end: a segment of its own
    return finish({"input_ids": ids, "position_ids": pos}, labels, device)

def collate(rows, pad_id, device, pack=0):
    """One example a row, padded on the right, with an attention mask."""
    import torch
    n = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), n), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for r, (x, spans) in enumerate(rows):
        ids[r, :len(x)], mask[r, :len(x)] = torch.tensor(x), 1
        for s, e in spans:  # loss masking: no loss on a prompt or the padding
            labels[r, s:e] = torch.tensor(x[s:e])
    return finish({"input_ids": ids, "attention_mask": mask}, labels, device)

def finish(inputs, labels, device):
    return {k: v.to(device) for k, v in inputs.items()}, labels.to(device)
