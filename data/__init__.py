"""
One reader for the JSONL files every script takes (formats in README / DESIGN.md):

    documents: {"id": str, "text": str, "facts": {"relation": "value", ...}?}
    QA:        {"id": str, "question": str, "answer": str | "answers": [str, ...], "relation": str,
                "doc_id": str?, "split": str?}

    from data import read_docs, read_qa, read_examples, DataError
    docs = read_docs("data/bios/docs.jsonl")
    qa = read_qa("data/bios/qa.jsonl", split="test")   # a file without "split" is used whole

Below the readers: how items become token ids (one QA encoding for train.py, eval.py and probe.py) and
how train.py draws its global batches and cuts them into padded micro-batches.

Missing ids default to the line number, a missing relation to the file's name (P19.dev.jsonl -> P19).
QA items always come back with "answers" (a list) and "answer" (its first entry). Bad input raises
DataError("FILE:LINE: what is wrong"); scripts print it and exit with code 2 before writing anything.
"""
import functools
import json
import os
import random
import sys

import torch

from augment import format_variants, qa_completion, qa_prompt

class DataError(ValueError):
    pass

def _read_jsonl(path):
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            rows.append((lineno, obj))
    if not rows:
        raise DataError(f"{path}: empty file")
    return rows

def _text(obj, key, where, required=True):
    v = obj.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise DataError(f"{where}: '{key}' must be a non-empty string" + ("" if key in obj else " (missing)"))
    return v

def _check_ids(items, path, lines):
    seen = {}
    for item, lineno in zip(items, lines):
        if item["id"] in seen:
            raise DataError(f"{path}:{lineno}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
        seen[item["id"]] = lineno

def read_docs(path):
    docs, lines = [], []
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        text = _text(obj, "text", where)
        facts = obj.get("facts", {})
        if not isinstance(facts, dict) or not all(isinstance(v, str) and v for v in facts.values()):
            raise DataError(f"{where}: 'facts' must map relation names to non-empty strings")
        for rel, value in facts.items():
            if value not in text:  # the property every augmentation keeps: facts occur verbatim
                raise DataError(f"{where}: fact {rel}={value!r} does not occur in the text")
        docs.append({**obj, "id": str(obj.get("id", lineno)), "text": text, "facts": facts})
        lines.append(lineno)
    _check_ids(docs, path, lines)
    return docs

def read_qa(path, split=None):
    """QA items of `split` ("train", "dev", "test"); all items if split is None or the file has no splits."""
    default_relation = os.path.basename(path).split(".")[0]
    items, lines = [], []
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        question = _text(obj, "question", where)
        answers = obj.get("answers", [obj["answer"]] if "answer" in obj else None)
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise DataError(f"{where}: needs 'answer' (a non-empty string) or 'answers' (a non-empty list of them)")
        relation = _text(obj, "relation", where, required=False) or default_relation
        split_of = _text(obj, "split", where, required=False)
        items.append({**obj, "id": str(obj.get("id", lineno)), "question": question, "answers": answers,
                      "answer": answers[0], "relation": relation, "split": split_of})
        lines.append(lineno)
    _check_ids(items, path, lines)
    if split is None or all(it["split"] is None for it in items):
        return items
    chosen = [it for it in items if it["split"] == split]
    if not chosen:
        raise DataError(f"{path}: no QA items with split {split!r} (splits there: "
                        f"{sorted({str(it['split']) for it in items})})")
    return chosen

def file_kind(path):
    """'docs' or 'qa', from the keys of the first object in the file."""
    lineno, obj = _read_jsonl(path)[0]
    if "text" in obj:
        return "docs"
    if "question" in obj:
        return "qa"
    raise DataError(f"{path}:{lineno}: neither a document ('text') nor a QA item ('question')")

def read_examples(path, split=None):
    """(kind, items) for a file of either kind: what train.py's --data takes."""
    kind = file_kind(path)
    return kind, read_docs(path) if kind == "docs" else read_qa(path, split)

# -----------------------------------------------------------------------------
# QA items as tokens: the same prompt and encoding for training, evaluation and probing

def make_prompt(tokenizer, question, fmt=0, chat=False):
    """The prompt train.py teaches and eval.py / probe.py ask with (chat: the tokenizer's chat template)."""
    if chat:
        return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)
    return qa_prompt(question, fmt)

def encode_pair(tokenizer, prompt, completion, chat=False):
    """Token ids of prompt + completion and the number of prompt tokens (the loss mask boundary)."""
    special = not chat  # a chat template already carries its special tokens
    p = tokenizer(prompt, add_special_tokens=special)["input_ids"]
    full = tokenizer(prompt + completion, add_special_tokens=special)["input_ids"]
    if full[:len(p)] != p:  # a merge across the boundary: encode the two sides apart
        full = p + tokenizer(completion, add_special_tokens=False)["input_ids"]
    return full, len(p)

# -----------------------------------------------------------------------------
# training examples: an example is a list of versions (formats, paraphrases); a version is (token ids, spans), where the
# spans (start, end) are the positions that carry loss: all of a document, the answer of a QA item

def load_examples(args, files, tokenizer, max_len, master_process):
    """Examples as lists of versions. Documents whose ids agree before a '#' (p7, p7#para0, p7#fmt3: the
    paraphrases of prepare.py, an augment.py output) are versions of one document, each in --aug formats;
    a QA item has --qa_aug prompt formats. Each pass over an example uses its next version, so arms with
    more versions see the same number of examples per step as the baseline."""
    groups, qa = {}, []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for f, (kind, items) in enumerate(files):
        for it in items:
            if kind == "docs":
                texts = format_variants(it["text"], args.aug, list(it.get("facts", {}).values()), args.seed)
                groups.setdefault(it["id"].split("#")[0], []).extend(
                    (ids, ((0, len(ids)),)) for ids in (tokenizer(t)["input_ids"] + eos for t in texts))
            else:
                pairs = [encode_pair(tokenizer, make_prompt(tokenizer, it["question"], k, args.chat),
                                     qa_completion(it["answer"]), args.chat) for k in range(args.qa_aug)]
                qa.append([(ids, ((n, len(ids)),)) for ids, n in pairs])
    if args.qa_pack > 1:  # QA items end to end, each encoded alone, as probe.py builds a few-shot prompt;
        packings = []      # 8 different packings are the versions, so each pass puts an item among others
        for v in range(8):
            order = list(range(len(qa)))
            random.Random(args.seed * 1000 + v).shuffle(order)
            packings.append([pack_versions([qa[i][v % len(qa[i])] for i in order[j:j + args.qa_pack]])
                             for j in range(0, len(qa), args.qa_pack)])
        qa = [list(versions) for versions in zip(*packings)]
    n_cut = sum(len(ids) > max_len for ex in list(groups.values()) + qa for ids, _ in ex)
    if n_cut and master_process:
        print(f"warning: {n_cut} sequences longer than the context ({max_len} tokens) were truncated", file=sys.stderr)
    # a document loses its end, a QA sequence its start (the answer must survive)
    docs = [[(ids[:max_len], ((0, min(len(ids), max_len)),)) for ids, _ in ex] for ex in groups.values()]
    cut = lambda ids: max(0, len(ids) - max_len)  # noqa: E731
    qa = [[(ids[cut(ids):], tuple((max(0, s - cut(ids)), e - cut(ids)) for s, e in spans)) for ids, spans in ex] for ex in qa]
    return docs + qa

def pack_versions(versions):
    ids, spans = [], []
    for x, sp in versions:
        spans += [(s + len(ids), e + len(ids)) for s, e in sp]
        ids += x
    return ids, tuple(spans)

@functools.lru_cache(maxsize=4)
def epoch_order(n, seed, epoch):
    order = list(range(n))
    random.Random(seed * 100003 + epoch).shuffle(order)
    return order

def global_batch(examples, step, size, seed):
    """The examples of a step: positions [step*size, (step+1)*size) of an endless stream of shuffled
    epochs; an example's format is chosen by the epoch, so every pass over a document shows the next one."""
    batch = []
    for q in range(step * size, (step + 1) * size):
        epoch, i = divmod(q, len(examples))
        j = epoch_order(len(examples), seed, epoch)[i]
        batch.append(examples[j][(epoch + j) % len(examples[j])])
    return batch

def micro_batches(batch, n_micro, rank, world_size, pad_id, device, split=True):
    """This rank's share of the global batch: world_size * n_micro micro-batches of similar lengths, each
    cut into pieces where the length drops below 0.7x the piece's longest (mixed documents and QA would
    otherwise pad every QA item to a document's length; the gradient is the same sum). Rows are padded
    on the right; labels are -100 on the prompt and the padding."""
    batch = sorted(batch, key=lambda x: -len(x[0]))
    size = len(batch) // (n_micro * world_size)
    chunks = [batch[j * size:(j + 1) * size] for j in range(n_micro * world_size)][rank::world_size]
    pieces = []
    for chunk in chunks:
        start = 0
        for r in range(1, len(chunk) + 1):
            if r == len(chunk) or (split and len(chunk[r][0]) < 0.7 * len(chunk[start][0])):
                pieces.append(collate(chunk[start:r], pad_id, device))
                start = r
    return pieces

def collate(rows, pad_id, device):
    n = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), n), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for r, (x, spans) in enumerate(rows):
        ids[r, :len(x)], mask[r, :len(x)] = torch.tensor(x), 1
        for s, e in spans:  # loss masking: no loss on a prompt or the padding
            labels[r, s:e] = torch.tensor(x[s:e])
    keep = (labels[:, 1:] != -100).any(0).nonzero().flatten()  # positions whose next token carries loss
    return ids.to(device), mask.to(device), labels.to(device), keep.to(device)
