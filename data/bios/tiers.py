"""
The biography world in tiers, for the regime both papers study: a *pretrained* model that already knows
people and answers questions about them, then learns new ones. One seed gives three disjoint sets of people:

    known      canonical biography + P paraphrases each (separate documents: 1 + P exposures a pass), and the
               QA of their train split: the pretraining mixture that teaches knowledge extraction
    long-tail  1, 2 or 4 copies (the canonical one, then paraphrases), no QA: less popular entities, the
               source of MaybeKnown and WeaklyKnown facts
    new        one canonical biography each, absent from pretraining: the facts to be learned

    python data/bios/tiers.py                                  # -> data/bios/pretrained/ (400 / 300 / 200 people)
    python data/bios/tiers.py --known 60 --longtail 60 --new 40 --seed 1 --out_dir /tmp/tiers
    python train.py --data W/pretrain.jsonl W/qa_known.jsonl --aug 4 --qa_pack 4 --max_steps 3000 \\
        --eval_qa W/qa_known.jsonl --out_dir W/base  # "the pretrained LLM" (experiments/reproduce.py caches one a seed)
    python eval.py --model W/base --qa W/qa_tiers.jsonl       # its exact match per tier (the split column)

Files (W = --out_dir): pretrain.jsonl (known + long-tail documents), qa_known.jsonl, new_docs.jsonl,
new_para.jsonl (4 paraphrases a new person, ids P#para0..3: the paraphrase arm), new_para_heldout.jsonl (4 more,
never trained on: the fact-token diagnostic), qa_new.jsonl, qa_slick.jsonl (long-tail + known test people, split
anew by person: the pool SliCK probing and gradual.py work on), qa_tiers.jsonl (every QA item, its split the
person's tier: known_train, known_dev, known_test, longtail_1 / _2 / _4, new). Every QA file but qa_tiers splits
people 45 / 10 / 45 % into train / dev / test (qa_slick: 50 / 10 / 40). Names are unique over all tiers.
"""
import argparse
import os
import random

from prepare import QUESTIONS, RELATIONS, TEMPLATES, document, make_people, write_jsonl

HERE = os.path.dirname(os.path.abspath(__file__))

def split_of(i, n, fractions):
    """train / dev / test for the i-th of n people (contiguous blocks, as prepare.py does)."""
    n_train = round(fractions[0] * n)
    n_dev = max(1, round(fractions[1] * n))
    return "train" if i < n_train else "dev" if i < n_train + n_dev else "test"

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--known", type=int, default=400, help="known people (default: %(default)s)")
    p.add_argument("--longtail", type=int, default=300,
                   help="long-tail people, spread evenly over --exposure (default: %(default)s)")
    p.add_argument("--new", type=int, default=200, help="new people (default: %(default)s)")
    p.add_argument("--exposure", type=int, nargs="+", default=[1, 2, 4],
                   help="copies of a long-tail biography (default: 1 2 4)")
    p.add_argument("--paraphrases", type=int, default=4,
                   help="paraphrases of each known biography (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed (same seed, byte-identical files; default: %(default)s)")
    p.add_argument("--out_dir", default=os.path.join(HERE, "pretrained"),
                   help="output folder (default: data/bios/pretrained)")
    args = p.parse_args(argv)
    if min(args.known, args.longtail, args.new) < 3 or min(args.exposure) < 1:
        p.error("--known, --longtail and --new need at least 3 people (one per split), --exposure at least 1 copy")
    rng = random.Random(args.seed)
    people = make_people(args.known + args.longtail + args.new, rng)

    def paraphrase(person):  # other templates, shuffled sentence order (as prepare.py --paraphrases)
        order = rng.sample(RELATIONS, len(RELATIONS))
        return document(person, [(r, rng.choice(TEMPLATES[r][1:])) for r in order], False)

    pretrain, new_docs, new_para, heldout, qa = [], [], [], [], {}
    for i, person in enumerate(people):
        pid, facts = f"p{i:05d}", {r: person[r] for r in RELATIONS}
        canonical = document(person, [(r, TEMPLATES[r][0]) for r in RELATIONS], False)
        if i < args.known:
            tier, k, n, copies = "known", i, args.known, 1 + args.paraphrases
        elif i < args.known + args.longtail:
            k, n = i - args.known, args.longtail
            copies = args.exposure[k % len(args.exposure)]
            tier = f"longtail_{copies}"
        else:
            tier, k, n, copies = "new", i - args.known - args.longtail, args.new, 0
        if tier == "new":
            new_docs.append({"id": pid, "text": canonical, "facts": facts})
            new_para += [{"id": f"{pid}#para{j}", "text": paraphrase(person), "facts": facts} for j in range(4)]
            heldout += [{"id": f"{pid}#para{j}", "text": paraphrase(person), "facts": facts} for j in range(4, 8)]
        else:  # separate documents (ids without '#'): each copy is one more exposure a pass
            pretrain += [{"id": pid if j == 0 else f"{pid}.{j}", "text": canonical if j == 0 else paraphrase(person),
                          "facts": facts, "tier": tier} for j in range(copies)]
        split = split_of(k, n, (0.45, 0.10)) if tier in ("known", "new") else None
        qa[pid] = [{"id": f"{pid}/{r}", "question": QUESTIONS[r].format(**person), "answer": person[r], "relation": r,
                    "doc_id": pid, "tier": tier, "split": split} for r in RELATIONS]
    known = [it for i in range(args.known) for it in qa[f"p{i:05d}"]]
    new = [it for i in range(args.known + args.longtail, len(people)) for it in qa[f"p{i:05d}"]]
    # SliCK's pool: the long-tail people and the known test people (QA never trained), interleaved, split anew
    pool = [f"p{i:05d}" for i in range(args.known, args.known + args.longtail)]
    pool += [it["doc_id"] for it in known if it["split"] == "test" and it["relation"] == RELATIONS[0]]
    rng.shuffle(pool)
    slick = [{**it, "split": split_of(k, len(pool), (0.5, 0.1))} for k, pid in enumerate(pool) for it in qa[pid]]
    tiers = [{**it, "split": it["tier"] if it["tier"] != "known" else f"known_{it['split']}"}
             for items in qa.values() for it in items]
    os.makedirs(args.out_dir, exist_ok=True)
    for name, rows in (("pretrain", pretrain), ("qa_known", known), ("new_docs", new_docs), ("new_para", new_para),
                       ("new_para_heldout", heldout), ("qa_new", new), ("qa_slick", slick), ("qa_tiers", tiers)):
        write_jsonl(os.path.join(args.out_dir, f"{name}.jsonl"), rows)
    print(f"wrote {args.known} known, {args.longtail} long-tail (exposure {' / '.join(map(str, args.exposure))}) and "
          f"{args.new} new people: {len(pretrain)} pretraining documents, {len(known) + len(new) + len(slick)} QA "
          f"items, to {args.out_dir}")

if __name__ == "__main__":
    main()
