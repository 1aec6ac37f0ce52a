"""
One reader for the JSONL files every script takes (formats in README / DESIGN.md):

    documents: {"id": str, "text": str, "facts": {"relation": "value", ...}?}
    QA:        {"id": str, "question": str, "answer": str | "answers": [str, ...], "relation": str,
                "doc_id": str?, "split": str?}

    from data import read_docs, read_qa, read_examples, DataError
    docs = read_docs("data/bios/docs.jsonl")
    qa = read_qa("data/bios/qa.jsonl", split="test")   # a file without "split" is used whole

Missing ids default to the line number, a missing relation to the file's name (P19.dev.jsonl -> P19).
QA items always come back with "answers" (a list) and "answer" (its first entry). Bad input raises
DataError("FILE:LINE: what is wrong"); scripts print it and exit with code 2 before writing anything.
"""
import json
import os

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
