"""
EntityQuestions (Sciavolino et al., EMNLP 2021), the data SliCK (Gekhman et al. 2024) probes, as the repo's QA
JSONL: one file with every relation and the release's own train / dev / test splits.

    python data/entityquestions/prepare.py                        # fetch the release -> data/entityquestions/qa.jsonl
    python data/entityquestions/prepare.py --relations P19 P36 P106 --max_per_split 2000
    python data/entityquestions/prepare.py --archive dataset.zip  # a release archive already on disk (offline)

The downloaded release is kept in data/entityquestions/dataset.zip (--cache, ignored by git) and reused by later
calls; without a network, download it elsewhere and pass --archive (experiments/reproduce.py and bench.py take
--eq_archive, or the EQ_ARCHIVE environment variable, and hand it here).
    python probe.py --model Qwen/Qwen2-1.5B --qa data/entityquestions/qa.jsonl --split test --out probe.jsonl

The release (dataset.zip) holds dataset/{train,dev,test}/P<id>.<split>.jsonl, one {"question", "answers"} a line;
the one-off sets of the paper (dataset/one-off/) are left out. Each item becomes {"id": "P19/test/12", "question",
"answers", "relation": "P19", "split"}. --max_per_split keeps a seeded random sample of each relation's split.
"""
import argparse
import io
import json
import os
import random
import re
import sys
import urllib.request
import zipfile

URL = "https://nlp.cs.princeton.edu/projects/entity-questions/dataset.zip"
HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER = re.compile(r"(?:^|/)dataset/(train|dev|test)/(P\d+)\.(train|dev|test)\.jsonl?$")

def convert(archive, relations=None, max_per_split=0, seed=0):
    """QA rows from a release archive (a path or bytes); raises ValueError naming what is wrong."""
    try:
        z = zipfile.ZipFile(archive if isinstance(archive, str) else io.BytesIO(archive))
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"not a zip archive ({e})") from None
    files = sorted((m.group(2), m.group(1), name) for name in z.namelist()
                   if (m := MEMBER.search(name)) and m.group(1) == m.group(3))
    if relations:
        files = [f for f in files if f[0] in relations]
    if not files:
        raise ValueError(f"no dataset/<split>/P<id>.<split>.jsonl files"
                         f"{' of ' + ' '.join(relations) if relations else ''} in it")
    rows = []
    for relation, split, name in files:
        items = []
        for lineno, line in enumerate(z.read(name).decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                question, answers = obj["question"], obj["answers"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{name}:{lineno}: expected {{\"question\": ..., \"answers\": [...]}}") from None
            if not isinstance(question, str) or not question.strip() or not isinstance(answers, list) or not answers:
                raise ValueError(f"{name}:{lineno}: empty question or answers")
            items.append({"id": f"{relation}/{split}/{lineno}", "question": question, "answers": answers,
                          "relation": relation, "split": split})
        if max_per_split and len(items) > max_per_split:  # the same sample for the same seed, in file order
            keep = set(random.Random(f"{seed}:{relation}:{split}").sample(range(len(items)), max_per_split))
            items = [it for i, it in enumerate(items) if i in keep]
        rows += items
    return rows

def download(url):
    """The release's bytes; where that fails, one line on how to get it by hand."""
    print(f"downloading {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    except OSError as e:
        raise OSError(f"cannot download it ({getattr(e, 'reason', e)}): download it by hand and pass --archive PATH "
                      "(experiments/reproduce.py and bench.py: --eq_archive PATH, or EQ_ARCHIVE=PATH)") from None

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", default=None, help="a release archive on disk (default: download it from --url)")
    p.add_argument("--url", default=URL, help="where the release archive is downloaded from")
    p.add_argument("--cache", default=os.path.join(HERE, "dataset.zip"),
                   help="where a downloaded archive is kept, and read from next time")
    p.add_argument("--relations", nargs="+", default=None,
                   help="keep these relations only (e.g. P19 P36); default: all")
    p.add_argument("--max_per_split", type=int, default=0,
                   help="at most this many items per relation and split (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --max_per_split sample")
    p.add_argument("--out", default=os.path.join(HERE, "qa.jsonl"), help="output QA JSONL")
    args = p.parse_args(argv)
    source = args.archive or (args.cache if os.path.exists(args.cache) else args.url)
    try:
        archive = download(args.url) if source == args.url else source
        rows = convert(archive, args.relations, args.max_per_split, args.seed)
    except (ValueError, OSError) as e:
        print(f"prepare.py: {source}: {e}", file=sys.stderr)
        sys.exit(2)
    if source == args.url:  # a release that converts: kept for the next call (whole or not at all)
        os.makedirs(os.path.dirname(os.path.abspath(args.cache)), exist_ok=True)
        with open(args.cache + ".tmp", "wb") as f:
            f.write(archive)
        os.replace(args.cache + ".tmp", args.cache)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(args.out + ".tmp", args.out)  # whole or not at all
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "dev", "test")}
    print(f"wrote {len(rows)} QA items of {len({r['relation'] for r in rows})} relations ({counts}) to {args.out}")

if __name__ == "__main__":
    main()
