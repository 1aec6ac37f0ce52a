"""
README's Results tables from reproduce.py's results.json (markdown on stdout), every regime, and the figures
beside them (PNG, next to results.json, drawn by experiments/figures.py; they need matplotlib, an optional extra:
pip install matplotlib).

    python experiments/report.py experiments/results/full/results.json
    python experiments/report.py results.json --figures /tmp/figs      # the PNGs elsewhere

Sections in the order printed: scratch_section (the from-scratch regime), pretrained_section, real_section (the
real model, with real_slick_section for its Table 2); gradual_table serves every Table 2. Figures: figures.py.
"""
import argparse
import collections
import json
import os
import statistics

from figures import figures

CATS = ["HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"]  # SliCK's categories (data.CATEGORIES)


def pm(cell, scale=100, digits=1):
    """A cell's mean ± std, scaled (n/a where there is none)."""
    if not cell:
        return "n/a"
    return f"{scale * cell['mean']:.{digits}f} ± {scale * cell['std']:.{digits}f}"


def mean_std(xs):
    """{mean, std} of values (None where there are none)."""
    return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0} if xs else None


def curve(c, fractions=(0.25, 0.5, 0.75, 1.0)):
    """Mean dev EM at a few points of the run: is held-out accuracy still rising at the end?"""
    pts = c.get("curve") or []
    if not pts:
        return "n/a"
    last = pts[-1][0]
    return " / ".join(f"{100 * min(pts, key=lambda p: abs(p[0] - f * last))[1]:.0f}" for f in fractions)


def per_seed_delta(values, baseline):
    """Each seed's difference to the baseline of the same seed, in points."""
    pairs = [(v, b) for v, b in zip(values or [], baseline or []) if v is not None and b is not None]
    return " / ".join(f"{100 * (v - b):+.1f}" for v, b in pairs) or "n/a"


def last_stage(rep):
    """stage2, or stage1 where stage 2 was skipped (or one run), or base where nothing trained."""
    return list(rep["categories"])[-1]


def gradual_table(t2):
    """gradual.py's reports against its baselines, mean ± std over seeds; seed 0's transitions in full."""
    print("| run | stage-1 items | HighlyKnown+MaybeKnown at the end | gained | per seed | lost (of HighlyKnown) "
          "| test EM % | per seed |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, reps in t2.items():
        if not reps:
            continue
        k = [rep["knowledge"][f"base->{last_stage(rep)}"] for rep in reps]
        em = [rep['test_exact_match'][last_stage(rep)] for rep in reps]
        print(f"| {mode} | {pm(mean_std([rep['n_stage1'] for rep in reps]), 1, 1)} "
              f"| {pm(mean_std([x['known_after'] for x in k]), 1, 1)} "
              f"| {pm(mean_std([x['gained'] for x in k]), 1, 1)} | {' / '.join(str(x['gained']) for x in k)} "
              f"| {pm(mean_std([x['lost'] for x in k]), 1, 1)} | {pm(mean_std(em))} "
              f"| {' / '.join(f'{100 * v:.1f}' for v in em)} |")
    reps = t2.get("gradual", [])
    base_em = [rep["test_exact_match"]["base"] for rep in reps]
    known_before = [rep['knowledge'][f'base->{last_stage(rep)}']['known_before'] for rep in reps]
    print(f"| base model (no fine-tuning) | | {pm(mean_std(known_before), 1, 1)}"
          f" | | | | {pm(mean_std(base_em))} | {' / '.join(f'{100 * v:.1f}' for v in base_em)} |")
    if reps:
        gradual_seed0(reps[0])


def gradual_seed0(rep):
    """Seed 0's gradual run: its categories, its transition matrices and the probe's noise, EM by category."""
    print(f"\nSeed 0, gradual: categories {json.dumps(rep['categories'])}\n")
    matrices = {**rep["transitions"], "probe noise (base model probed twice, two seeds)": rep["probe_noise"]}
    for name, m in matrices.items():
        print(f"{name} (rows: before, columns: after)\n\n| | " + " | ".join(CATS) + " |\n" + "|---" * 5 + "|")
        for a in CATS:
            print(f"| {a} | " + " | ".join(str(m[a][b]) for b in CATS) + " |")
        print()
    print("Test exact match by base-model category (seed 0): " + json.dumps(
        {s: {c: round(v, 3) for c, v in d.items()} for s, d in rep["test_exact_match_by_category"].items()}) + "\n")


def scratch_section(r):
    """The from-scratch regime: sweeps, Table 1, search, the fact-loss correlation, Table 2, instruction tuning, the
    larger world."""
    cfg = r["config"]
    made = ", ".join(f"{part} {c}" for part, c in r.get("commits", {}).items()) or "before commits were recorded"
    runs = collections.Counter((j["commit"], j["machine"]) for j in r.get("jobs", {}).values())
    where = "; ".join(f"{n} at {c} on {m}" for (c, m), n in runs.items()) or r.get("machine", "?")
    print(f"Mode `{r['mode']}`: {cfg['people']} people, {cfg['steps']} steps of {cfg['batch']} examples, "
          f"{len(cfg['seeds'])} seed(s) per cell. Mean ± std over seeds. Code: {made}. Runs: {where}.\n")
    if "sweeps" in r:
        print("**Sweeps, mixed training: exact match % on dev and test people (K formats; SAM radius rho)**\n")
        print("| run | dev EM | test EM | dev EM at 1/4, 1/2, 3/4, all of the steps | tokens trained |\n"
              "|---|---|---|---|---|")
        for name, c in r["sweeps"].items():
            print(f"| {name.replace('mixed_', '')} | {pm(c['dev_exact_match'])} | {pm(c['test_exact_match'])} "
                  f"| {curve(c)} | {pm(c['tokens'], 1e-6, 2)}M |")
        print(f"\nChosen on dev: {r.get('chosen')}\n")
    if "table1" in r:
        print("**Table 1: QA exact match (%) on held-out (test) people; fact-token loss on their documents in unseen "
              "formats and paraphrases**\n")
        print("| arm | (b) mixed | (a) documents, then QA tuning | fact loss, unseen formats (b) "
              "| unseen paraphrases (b) |")
        print("|---|---|---|---|---|")
        for arm, c in r["table1"].items():
            m, s = c["mixed"], c["sequential"]
            print(f"| {arm} | {pm(m['test_exact_match'])} | {pm(s['test_exact_match'])} "
                  f"| {pm(m.get('fact_loss_formats'), 1, 3)} | {pm(m.get('fact_loss_paraphrases'), 1, 3)} |")
        print()
    if "search" in r:
        print("**Search: baseline and SAM in other settings (mixed training, exact match %, fact loss on unseen "
              "formats)**\n")
        print("| setting | arm | dev EM | test EM | dev EM at 1/4, 1/2, 3/4, all | fact loss, unseen formats |\n"
              "|---|---|---|---|---|---|")
        for setting, arms in r["search"].items():
            for arm, c in arms.items():
                print(f"| {setting} | {arm} | {pm(c['dev_exact_match'])} | {pm(c['test_exact_match'])} | {curve(c)} "
                      f"| {pm(c.get('fact_loss_formats'), 1, 3)} |")
        print()
    for protocol, fl in r.get("fact_loss_vs_test_em", {}).items():
        print(f"Pearson correlation of fact-token loss with test EM, {protocol} training, over {fl['points']} runs: "
              f"{fl['pearson_formats']:.2f} (unseen formats), {fl['pearson_paraphrases']:.2f} (unseen paraphrases).\n")
    if "table2" in r:
        print("**Table 2: gradual learning against same-budget baselines (train split: half of the held-out people; "
              "test: the other half)**\n")
        gradual_table(r["table2"])
    if "it" in r:
        it_table(r["it"], "the model trained from scratch", "nothing (it knew nothing before its documents)")
    if "it_para" in r:
        it_table(r["it_para"], "the model trained from scratch on documents and paraphrases",
                 "nothing (it knew nothing before its documents)")
    if "large" in r:
        print(f"**Larger world: {r['large']['config']}**\n\n| arm | test EM | dev EM |\n|---|---|---|")
        for arm, c in r["large"]["cells"].items():
            print(f"| {arm} | {pm(c['test_exact_match'])} | {pm(c['dev_exact_match'])} |")


def pretrained_section(p):
    """The pretrained regime: the base, sweeps, Table 1 (both protocols), Table 2 (SliCK's shares and experiment,
    gradual.py)."""
    cfg = p["config"]
    print(f"World (data/bios/tiers.py): {cfg['known']} known, {cfg['longtail']} long-tail, {cfg['new']} new people; "
          f"base model pretrained {cfg['base_steps']} steps; {len(cfg['seeds'])} seed(s) a cell. Mean ± std over "
          "seeds.\n")
    if "base" in p:
        tiers = [t for t in p["base"] if t != "curve"]
        print("**The base model ('the pretrained LLM'): exact match % per tier**\n\n| " + " | ".join(tiers) + " |\n"
              + "|---" * len(tiers) + "|")
        print("| " + " | ".join(pm(p["base"][t]) for t in tiers) + " |\n")
    if "sweeps" in p:
        print("**Sweeps (mixed CPT from the base, seed 0): new people's dev / test EM, known people's dev EM after "
              "CPT**\n")
        print("| run | new dev EM | new test EM | known dev EM | new dev EM at 1/4, 1/2, 3/4, all |\n"
              "|---|---|---|---|---|")
        for name, c in p["sweeps"].items():
            print(f"| {name} | {pm(c['dev_exact_match'])} | {pm(c['test_exact_match'])} | {pm(c['known_dev'])} "
                  f"| {curve(c)} |")
        print(f"\nChosen on dev: {p.get('chosen')}\n")
    if "table1" in p:
        pretrained_table1(p["table1"])
    if "table2" in p:
        pretrained_shares(p["table2"])
    if "it" in p:
        it_table(p["it"], "the tiny pretrained base", "the known people's test QA, zero-shot")
    if "unknown" in p:
        print(f"**SliCK's experiment: a fine-tuning set of {' / '.join(map(str, p.get('unknown_n', {}).values()))} "
              f"items (seed {' / '.join(p.get('unknown_n', {}))}), a share of it Unknown to the base model; "
              "test EM % at the dev-chosen early stop and at the end of training**\n\n"
              "| Unknown share | early stop | end of training | best step |\n|---|---|---|---|")
        for frac, c in p["unknown"].items():
            print(f"| {100 * float(frac):.0f}% | {pm(c['early_stop'])} | {pm(c['end'])} | {pm(c['best_step'], 1, 0)} |")
        print()
    if "table2" in p:
        print("**gradual.py against same-budget baselines, pretrained regime (the SliCK pool's train split; test: its "
              "test split)**\n")
        gradual_table(p["table2"])


def pretrained_table1(t1):
    """The pretrained regime's Table 1: knowledge acquired and kept by both protocols, tokens, fact losses."""
    print("**Table 1, pretrained regime: new people's test EM % (knowledge acquired) and known people's test EM % "
          "after it (knowledge kept); per-seed difference to the baseline in points; fact-token loss on the new "
          "people's documents**\n")
    print("| arm | (b) mixed: new | per seed vs baseline | known kept | (a) docs, then QA: new | per seed vs baseline "
          "| known kept | tokens (b) / (a) | fact loss, unseen formats (b) / (a) | unseen paraphrases (b) / (a) |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    base = t1.get("baseline", {})
    for arm, c in t1.items():
        m, q = c.get("mixed", {}), c.get("sequential", {})  # the protocols run as separate parts
        print(f"| {arm} | {pm(m.get('test_exact_match'))} "
              f"| {per_seed_delta(m.get('per_seed_test'), base.get('mixed', {}).get('per_seed_test'))} "
              f"| {pm(m.get('known_test'))} | {pm(q.get('test_exact_match'))} "
              f"| {per_seed_delta(q.get('per_seed_test'), base.get('sequential', {}).get('per_seed_test'))} "
              f"| {pm(q.get('known_test'))} | {pm(m.get('tokens'), 1e-6, 2)}M / {pm(q.get('tokens'), 1e-6, 2)}M "
              f"| {pm(m.get('fact_loss_formats'), 1, 3)} / {pm(q.get('fact_loss_formats'), 1, 3)} "
              f"| {pm(m.get('fact_loss_paraphrases'), 1, 3)} / {pm(q.get('fact_loss_paraphrases'), 1, 3)} |")
    print()


def pretrained_shares(t2):
    """The pretrained base's SliCK categories on the fine-tuning pool, beside SliCK's."""
    shares = [rep["categories"]["base"] for rep in t2.get("one_stage", [])]
    if shares:
        cats = {c: mean_std([100 * s[c] / sum(s.values()) for s in shares]) for c in CATS}
        print("**Table 2, pretrained regime: the base model's SliCK categories on the fine-tuning pool (long-tail and "
              "known test people), beside SliCK's on EntityQuestions**\n\n| | " + " | ".join(CATS) + " |\n"
              + "|---" * 5 + "|")
        print("| this base model | " + " | ".join(pm(cats[c], 1) + "%" for c in CATS)
              + " |\n| SliCK (Gekhman et al.) | 24% | 23% | 17% | 36% |\n")


def real_section(q):
    """The real model: the base, the dev grid, Table 1 (knowledge acquired and kept), Table 2."""
    cfg, base = q["config"], q.get("base", {})
    print(f"SmolLM2-135M-Instruct (4-bit GGUF weights dequantized to fp32); {cfg['new']} new people "
          f"(data/bios/tiers.py's new tier); kept set: {base.get('kept_n')} EntityQuestions {cfg['kept_split']} "
          f"questions it answers 4-shot (of {12 * cfg['eq_per_split']}: "
          f"{100 * (base.get('knowledge_test_em') or 0):.1f}%), replay: {base.get('replay_n')} train questions it "
          f"answers. The base on the new people, 4-shot: "
          f"{json.dumps({k: round(100 * v, 1) for k, v in base.get('new_4shot', {}).items()})}.\n")
    if "dev" in q:
        print("**Dev grid (seed 0, protocol (c) documents only): 4-shot EM % of the new train and dev people (in (c) "
              "no QA of theirs is trained on), of the test people, kept %, tokens**\n\n"
              "| run | new train + dev EM | new test EM | kept | tokens |\n|---|---|---|---|---|")
        for name, r in q["dev"].items():
            print(f"| {name[len('real_docs_'):-len('_s0')]} | {100 * (r['dev'] or 0):.1f} "
                  f"| {100 * (r['test'] or 0):.1f} | {100 * (r['kept'] or 0):.1f} | {r['tokens']} |")
        print(f"\nChosen on dev: {q.get('chosen')}\n")
    if "table1" in q:
        real_table1(q["table1"])
    if "slick" in q:
        real_slick_section(q["slick"])
    if "precision_check" in q:
        precision_check(q)
    if "table1_bf16" in q:
        real_table1_bf16(q)
    if "it" in q:
        it_table(q["it"], "SmolLM2-135M-Instruct", "EntityQuestions questions it answered before, 4-shot")


def precision_check(q):
    """bf16 against fp32 on the base, one machine: its probe categories and its 4-shot answers."""
    p = q["precision_check"]
    n, (fp32, bf16) = p["questions"], p["categories"]
    print(f"**bf16 against fp32 on one machine: SmolLM2's base on {n} EntityQuestions test questions (40 a relation "
          "of SliCK's 12), probe.py --fast categories and eval.py --shots 4**\n\n| | " + " | ".join(CATS)
          + " | 4-shot EM % |\n|---|---|---|---|---|---|")
    for name, cats, em in (("fp32", fp32, p["em"][0]), ("bf16", bf16, p["em"][1])):
        print(f"| {name} | " + " | ".join(str(cats[c]) for c in CATS) + f" | {100 * em:.1f} |")
    print(f"\nSame category in both: {p['same_category']} of {n} ({100 * p['same_category'] / n:.1f}%; the probe's "
          f"own seed noise moves 10-13%); the same 4-shot verdict (right or wrong): {p['same_answer_right']} of {n}.\n")


def real_table1_bf16(q):
    """Protocol (b) in bf16: every arm's acquired (each seed, its difference to the bf16 baseline) and kept, tokens,
    fact losses; seed 0 of each arm beside Table 1's fp32 row where it has one."""
    t, small = q["table1_bf16"], q.get("chosen", {}).get("small_rho")
    print("**Table 1 in bf16, protocol (b) (documents and the train people's QA, then the test people zero-shot): new "
          "test people's EM %, mean ± std (each seed); per-seed difference to the bf16 baseline in points; kept %; "
          "tokens; fact-token loss in unseen formats / paraphrases. Every run in bf16**\n")
    print("| arm | new test EM | per seed vs baseline | kept | k tokens | fact loss: formats / paraphrases |\n"
          "|---|---|---|---|---|---|")
    b = t.get("baseline", {}).get("mixed", {})
    for arm, c in t.items():
        m = c["mixed"]
        print(f"| {arm} | {real_cell(m, 'test')} | {per_seed_delta(m.get('per_seed_test'), b.get('per_seed_test'))} "
              f"| {real_cell(m, 'kept')} | {pm(m.get('tokens'), 1e-3, 0)} | {pm(m.get('fact_loss_formats'), 1, 2)} / "
              f"{pm(m.get('fact_loss_paraphrases'), 1, 2)} |")
    if small:
        print(f"\nSAM below rho 0.05, seed 0, dev EM (the 4 dev people, zero-shot): the best, {small['arm']}, "
              f"{100 * small['dev']:.1f}% against the baseline's {100 * small['baseline_dev']:.1f}%: "
              + ("it runs on every seed." if small["arm"] in t else "not ahead, so not run on the other seeds."))
    fp32 = {a: (q.get("table1", {}).get(a, {}).get("mixed", {}).get("per_seed_test") or [None])[0] for a in t}
    bf16 = {a: (c["mixed"].get("per_seed_test") or [None])[0] for a, c in t.items()}
    pairs = [f"{a} {100 * fp32[a]:.1f} / {100 * bf16[a]:.1f}" for a in t if None not in (fp32[a], bf16[a])]
    if pairs:
        print("\nSeed 0, new test EM % in fp32 (Table 1) / bf16 (this table): " + "; ".join(pairs))
    print()


def it_table(it, model, kept):
    """Instruction tuning (protocol (a)): zero-shot test EM in the trained prompt and in a held-out one, kept; each
    seed and its difference to the baseline; the dev runs and what was chosen."""
    t = it.get("table", {})
    if not t:
        return
    b, dtypes = t.get("baseline", {}), ", ".join(sorted({c.get("dtype", "float32") for c in t.values()}))
    print(f"**Instruction tuning on {model} (protocol (a): documents, then the train people's QA): the test people's "
          "EM % zero-shot in the prompt format trained on (format 0) and in one no run trained on (held out), mean ± "
          f"std (each seed); per-seed difference to the baseline in points; kept: {kept}. Precision: {dtypes}**\n")
    print("| arm | test EM | per seed vs baseline | held-out format EM | per seed vs baseline | kept | seeds |\n"
          "|---|---|---|---|---|---|---|")
    for arm, c in t.items():
        print(f"| {arm} | {real_cell(c, 'test')} | {per_seed_delta(c.get('per_seed_test'), b.get('per_seed_test'))} "
              f"| {real_cell(c, 'heldout')} | {per_seed_delta(c.get('per_seed_heldout'), b.get('per_seed_heldout'))} "
              f"| {real_cell(c, 'kept')} | {c['seeds']} |")
    if it.get("dev"):
        print("\nDev (seed 0), EM % of the 4 dev people / kept %: " + "; ".join(
            f"{n.split('_it_', 1)[1]} {100 * (r['dev'] or 0):.1f} / {100 * (r['kept'] or 0):.1f}"
            for n, r in it["dev"].items()))
    print(f"\nChosen on dev: {it.get('chosen')}\n")


def real_cell(c, key):
    """mean ± std (each seed's %)."""
    seeds = [f"{100 * v:.1f}" for v in c.get(f"per_seed_{key}", []) if v is not None]
    return pm(c.get(key)) + (f" ({' / '.join(seeds)})" if seeds else "")


def real_table1(t1):
    """The real model's Table 1: acquired (each seed, and its difference to the baseline) and kept by both
    protocols, tokens, fact losses."""
    print("**Table 1, real model: new test people's EM % (knowledge acquired; (c): 4-shot after documents only, (b): "
          "zero-shot after mixed training), EM % on the EntityQuestions questions it answered before (knowledge kept), "
          "mean ± std (each seed); per-seed difference to the baseline in points; fact-token loss on the new people's "
          "documents in unseen formats / paraphrases**\n")
    print("| arm | (c) docs: new | per seed vs baseline | kept | (b) mixed: new | per seed vs baseline | kept "
          "| k tokens (c) / (b) | fact loss (c): formats / paraphrases | (b) |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    b = t1.get("baseline", {})
    for arm, c in t1.items():
        d, m = c.get("docs", {}), c.get("mixed", {})
        print(f"| {arm} | {real_cell(d, 'test')} "
              f"| {per_seed_delta(d.get('per_seed_test'), b.get('docs', {}).get('per_seed_test'))} "
              f"| {real_cell(d, 'kept')} | {real_cell(m, 'test')} "
              f"| {per_seed_delta(m.get('per_seed_test'), b.get('mixed', {}).get('per_seed_test'))} "
              f"| {real_cell(m, 'kept')} | {pm(d.get('tokens'), 1e-3, 0)} / {pm(m.get('tokens'), 1e-3, 0)} "
              f"| {pm(d.get('fact_loss_formats'), 1, 2)} / {pm(d.get('fact_loss_paraphrases'), 1, 2)} "
              f"| {pm(m.get('fact_loss_formats'), 1, 2)} / {pm(m.get('fact_loss_paraphrases'), 1, 2)} |")
    print()


def real_slick_section(t):
    """Table 2 on the real model: what it knows, SliCK's experiment, gradual.py against its baselines."""
    print("**What SmolLM2-135M-Instruct knows: SliCK categories (%) of EntityQuestions questions, probe.py --fast (10 "
          "prompts of 4 exemplars), seed 0** (SliCK's PaLM-2-M over its 12 relations: 24 / 23 / 17 / 36)\n\n"
          "| relation | train pool: n | " + " | ".join(CATS) + " | test: n | " + " | ".join(CATS) + " |\n"
          + "|---" * 11 + "|")
    by = t.get("shares_by_relation", {})
    for rel in by.get("train", {}):
        tr, te = by["train"][rel], by.get("test", {}).get(rel, {})
        print(f"| {rel} | {tr['n']} | " + " | ".join(f"{tr[c]:.1f}" for c in CATS) + f" | {te.get('n', '')} | "
              + " | ".join(f"{te[c]:.1f}" if c in te else "" for c in CATS) + " |")
    noise = [rep["probe_noise"] for rep in t.get("table2", {}).get("one_stage", [])]
    if noise:
        changed = [sum(m[a][b] for a in CATS for b in CATS if a != b) / sum(m[a][b] for a in CATS for b in CATS)
                   for m in noise]
        print(f"\nProbe noise: the train pool probed twice (seeds s and s + 1), {100 * min(changed):.1f}-"
              f"{100 * max(changed):.1f}% of the questions change category by chance ({len(noise)} seed(s)).\n")
    if "unknown" in t:
        real_unknown(t)
    if "table2" in t:
        print("**gradual.py against same-budget baselines, real model (EntityQuestions train pool; test: its test "
              "split, 4-shot at every stage)**\n")
        gradual_table(t["table2"])


def real_unknown(t):
    """SliCK's experiment on the real model, each share against 0% Unknown, and its train-accuracy curves."""
    print(f"**SliCK's experiment on the real model: {' / '.join(map(str, t.get('unknown_n', {}).values()))} "
          "fine-tuning items a seed, a share of them Unknown to the base (the rest known), QA fine-tuning; test EM % "
          "zero-shot (the model is tuned to the QA format) at the best dev step and at the end, and at the end by the "
          "test items' base categories**\n")
    print("| Unknown share | early stop | per seed vs 0% | end | per seed vs 0% | best step | end: " + " / ".join(CATS)
          + " |\n" + "|---" * 7 + "|")
    zero = next(iter(t["unknown"].values()))
    for frac, c in t["unknown"].items():
        print(f"| {100 * float(frac):.0f}% | {pm(c['early_stop'])} "
              f"| {per_seed_delta(c.get('per_seed_early_stop'), zero.get('per_seed_early_stop'))} "
              f"| {pm(c['end'])} | {per_seed_delta(c.get('per_seed_end'), zero.get('per_seed_end'))} "
              f"| {pm(c['best_step'], 1, 0)} | "
              + " / ".join(pm(c.get("end_by_category", {}).get(k)) for k in CATS) + " |")
    curves = t.get("unknown_curves", {})
    print("\nTrain accuracy (EM %) of the fine-tuning set's Unknown and known items as training goes (the middle "
          "share, seed 0): " + "; ".join(f"{kind}: " + ", ".join(f"step {st} {100 * v:.0f}" for st, v in pts)
                                          for kind, pts in curves.items()) + "\n")


def main(argv=None):
    """Every section of the report, then the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="reproduce.py's results.json")
    ap.add_argument("--figures", default=None, help="folder for the PNGs (default: beside results.json)")
    args = ap.parse_args(argv)
    r = json.load(open(args.results))
    print("## The from-scratch regime\n")
    scratch_section(r)
    if "pretrained" in r:
        print("## The pretrained regime\n")
        pretrained_section(r["pretrained"])
    if "real" in r:
        print("## The real model\n")
        real_section(r["real"])
    for path in figures(r, args.figures or os.path.dirname(os.path.abspath(args.results))):
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
