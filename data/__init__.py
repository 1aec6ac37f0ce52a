"""
One reader for the JSONL files every script takes (formats in README's "Data formats"):

    documents: {"id": str, "text": str, "facts": {"relation": "value", ...}?}
    QA:        {"id": str, "question": str, "answer": str | "answers": [str, ...], "relation": str,
                "doc_id": str?, "split": str?}

    from data import read_docs, read_qa, read_examples, DataError
    docs = read_docs("data/bios/docs.jsonl")
    qa = read_qa("data/bios/qa.jsonl", split="test")   # a file without "split" is used whole

Below the readers: how items become token ids (one QA encoding for train.py, eval.py and probe.py). How
train.py makes examples of them, draws its global batches and cuts them into micro-batches: data/batches.py.

Missing ids default to the line number, a missing relation to the file's name (P19.dev.jsonl -> P19).
QA items always come back with "answers" (a list) and "answer" (its first entry). Bad input raises
DataError("FILE:LINE: what is wrong"); scripts print it and exit with code 2 before writing anything.
"""
import functools
import json
import os
import random
import argparse

from augment import qa_completion, qa_prompt

CATEGORIES = ["HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"]  # SliCK's, in probe.py's output ("category")
SLICK_RELATIONS = "P17 P19 P26 P36 P40 P69 P131 P136 P264 P495 P740 P800".split()  # SliCK's EntityQuestions relations

class DataError(ValueError):
    pass

class Help(argparse.RawDescriptionHelpFormatter):
    """--help of every script: the module docstring as written, and each flag's default."""
    def _get_help_string(self, action):
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        default = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
        return action.help + (f" (default: {default})" if shown else "")

def write_json(path, obj):
    """A JSON file, whole or not at all (written aside, then renamed)."""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)

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

def splits_of(items):
    """The splits of QA items, sorted; [None] for a file without splits."""
    return sorted({it["split"] for it in items if it["split"]}) or [None]

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

def train_tokenizer(texts, vocab_size, out_dir):
    """A byte-level BPE tokenizer trained on `texts` (BOS, EOS and PAD special), saved to out_dir for
    AutoTokenizer: the scratch model's. A prefix space makes " Anna" at the start of a text what it is inside."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                                       special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<|bos|> $A", special_tokens=[("<|bos|>", 0)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                            pad_token="<|pad|>").save_pretrained(out_dir)

@functools.lru_cache(maxsize=1 << 16)
def token_ids(tokenizer, text):
    """A text's token ids without special tokens, cached: a probe asks each question under many prompts, and
    every prompt repeats its exemplars."""
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])

@functools.lru_cache(maxsize=16)
def start_ids(tokenizer):
    """The special tokens a tokenizer puts before a text (its BOS: Llama, Mistral), [] if none (GPT-2, Qwen)."""
    ids, bare = tokenizer("a")["input_ids"], tokenizer("a", add_special_tokens=False)["input_ids"]
    return next((ids[:i] for i in range(len(ids) - len(bare) + 1) if ids[i:i + len(bare)] == bare), [])

@functools.lru_cache(maxsize=16)
def lead_space(tokenizer):
    """" " if a text's first word must follow a space to get the tokens it has inside a text. Byte-level BPE
    without a prefix space (GPT-2, Qwen2, Llama-3, tekken) gives 'Anna' at the start and ' Anna' after a
    space different tokens; SentencePiece adds its own prefix space. A document opens with its person's name,
    so without this its name tokens would not be the question's: a tokenization artefact, not a fact."""
    def enc(s):
        return tokenizer(s, add_special_tokens=False)["input_ids"]
    inside = enc("x Anna")[len(enc("x")):]
    return " " if enc("Anna") != inside and enc(" Anna") == inside else ""

def encode_doc(tokenizer, text):
    """A document's token ids: BOS (if the tokenizer adds one), its text, EOS."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return start_ids(tokenizer) + tokenizer(lead_space(tokenizer) + text, add_special_tokens=False)["input_ids"] + eos

def encode_pair(tokenizer, prompt, completion, chat=False, bos=True):
    """Token ids of [BOS] + prompt + completion and the number of tokens before the completion (the loss mask
    boundary). bos=False leaves the BOS out: QA items put end to end (a few-shot prompt, --qa_pack) share the
    one BOS at the start of the sequence, as the text a pretrained model read did."""
    def enc(s):
        return list(token_ids(tokenizer, s))
    start = start_ids(tokenizer) if bos and not chat else []  # a chat template carries its own
    p, full = enc(prompt), enc(prompt + completion)
    if full[:len(p)] != p:  # a merge across the boundary: encode the two sides apart
        full = p + enc(completion)
    return start + full, len(start) + len(p)

def encode_qa_sequence(tokenizer, pairs):
    """(ids, spans) of several (prompt, completion) pairs end to end after one BOS; the spans are where each
    completion lies. A probe's few-shot prompt and a --qa_pack training sequence are built by this one function."""
    ids, spans = list(start_ids(tokenizer)), []
    for prompt, completion in pairs:
        x, n = encode_pair(tokenizer, prompt, completion, bos=False)
        spans.append((len(ids) + n, len(ids) + len(x)))
        ids += x
    return ids, tuple(spans)

def exemplar_pool(path):
    """(few-shot exemplars, their split) of a QA file: its dev split; without one its train split; a file without
    splits is its own pool (exemplar_sets' spare keeps an item from its own prompt). Never the test split."""
    everything = read_qa(path)
    splits = {it["split"] for it in everything}
    source = "dev" if "dev" in splits else "train" if "train" in splits else None
    pool = [it for it in everything if it["split"] == source]
    if not pool:
        raise DataError(f"{path}: no dev (or train) items to draw few-shot exemplars from")
    return pool, source

def exemplar_sets(pool, n_prompts, shots, seed):
    """For each relation, n_prompts fixed sets of shots + 1 exemplars (one spare, so that an item that is
    itself in a set is replaced by the spare and never sees its own answer). probe.py asks with all of them;
    eval.py --shots with the first, so its greedy exact match is the probe's P_greedy on that prompt."""
    by_rel = {}
    for it in pool:
        by_rel.setdefault(it["relation"], []).append(it)
    return {rel: [random.Random(f"{seed}:{rel}:{j}").sample(items, min(shots + 1, len(items)))
                  for j in range(n_prompts)]
            for rel, items in by_rel.items()}

def prefix_ids(tokenizer, item, exemplars, shots):
    """The few-shot prefix: one BOS (if the tokenizer adds one), then each exemplar encoded exactly as
    train.py encodes a QA item, end to end: the sequence train.py --qa_pack builds (encode_qa_sequence).
    Encoding the joined text instead would tokenize the second "Question" after a newline, unlike every
    "Question" the model was trained on (with byte-level BPE and a prefix space: "Question" against
    " Question"); a small model then fails its own training facts."""
    chosen = [e for e in exemplars if e["id"] != item["id"]][:shots]
    pairs = [(qa_prompt(e["question"]), qa_completion(e["answer"])) for e in chosen]
    return tuple(encode_qa_sequence(tokenizer, pairs)[0])
