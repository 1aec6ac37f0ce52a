"""
README's Results tables from reproduce.py's results.json (markdown on stdout), both regimes, and the figures
beside them (PNG, next to results.json; they need matplotlib, an optional extra: pip install matplotlib).

    python experiments/report.py experiments/results/full/results.json
    python experiments/report.py results.json --figures /tmp/figs      # the PNGs elsewhere
"""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real  # noqa: E402  (experiments/real.py: the real-model regime's section and figure)

CATS = ["HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"]

def pm(cell, scale=100, digits=1):
    if not cell:
        return "n/a"
    return f"{scale * cell['mean']:.{digits}f} ± {scale * cell['std']:.{digits}f}"

def mean_std(xs):
    return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0} if xs else None

def curve(c, fractions=(0.25, 0.5, 0.75, 1.0)):
    """Mean dev EM at a few points of the run: is held-out accuracy still rising at the end?"""
    pts = c.get("curve") or []
    if not pts:
        return "n/a"
    last = pts[-1][0]
    return " / ".join(f"{100 * min(pts, key=lambda p: abs(p[0] - f * last))[1]:.0f}" for f in fractions)

def last_stage(rep):  # stage2, or stage1 where stage 2 was skipped (or one run), or base where nothing trained
    return list(rep["categories"])[-1]

def gradual_table(t2):
    """gradual.py's reports against its baselines, mean ± std over seeds; seed 0's transitions in full."""
    print("| run | stage-1 items | HighlyKnown+MaybeKnown at the end | gained | per seed | lost (of HighlyKnown) | test EM % | per seed |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, reps in t2.items():
        if not reps:
            continue
        k = [rep["knowledge"][f"base->{last_stage(rep)}"] for rep in reps]
        em = [rep['test_exact_match'][last_stage(rep)] for rep in reps]
        print(f"| {mode} | {pm(mean_std([rep['n_stage1'] for rep in reps]), 1, 1)} | {pm(mean_std([x['known_after'] for x in k]), 1, 1)} "
              f"| {pm(mean_std([x['gained'] for x in k]), 1, 1)} | {' / '.join(str(x['gained']) for x in k)} "
              f"| {pm(mean_std([x['lost'] for x in k]), 1, 1)} | {pm(mean_std(em))} | {' / '.join(f'{100 * v:.1f}' for v in em)} |")
    reps = t2.get("gradual", [])
    base_em = [rep["test_exact_match"]["base"] for rep in reps]
    base = mean_std(base_em)
    print(f"| base model (no fine-tuning) | | {pm(mean_std([rep['knowledge'][f'base->{last_stage(rep)}']['known_before'] for rep in reps]), 1, 1)}"
          f" | | | | {pm(base)} | {' / '.join(f'{100 * v:.1f}' for v in base_em)} |")
    if reps:
        rep = reps[0]
        print(f"\nSeed 0, gradual: categories {json.dumps(rep['categories'])}\n")
        for name, m in {**rep["transitions"], "probe noise (base model probed twice, two seeds)": rep["probe_noise"]}.items():
            print(f"{name} (rows: before, columns: after)\n\n| | " + " | ".join(CATS) + " |\n" + "|---" * 5 + "|")
            for a in CATS:
                print(f"| {a} | " + " | ".join(str(m[a][b]) for b in CATS) + " |")
            print()
        print("Test exact match by base-model category (seed 0): " + json.dumps(
            {s: {c: round(v, 3) for c, v in d.items()} for s, d in rep["test_exact_match_by_category"].items()}) + "\n")

def per_seed_delta(values, baseline):
    """Each seed's difference to the baseline of the same seed, in points."""
    pairs = [(v, b) for v, b in zip(values or [], baseline or []) if v is not None and b is not None]
    return " / ".join(f"{100 * (v - b):+.1f}" for v, b in pairs) or "n/a"

def pretrained_section(p):
    cfg = p["config"]
    print(f"World (data/bios/tiers.py): {cfg['known']} known, {cfg['longtail']} long-tail, {cfg['new']} new people; base model "
          f"pretrained {cfg['base_steps']} steps; {len(cfg['seeds'])} seed(s) a cell. Mean ± std over seeds.\n")
    if "base" in p:
        tiers = [t for t in p["base"] if t != "curve"]
        print("**The base model ('the pretrained LLM'): exact match % per tier**\n\n| " + " | ".join(tiers) + " |\n" + "|---" * len(tiers) + "|")
        print("| " + " | ".join(pm(p["base"][t]) for t in tiers) + " |\n")
    if "sweeps" in p:
        print("**Sweeps (mixed CPT from the base, seed 0): new people's dev / test EM, known people's dev EM after CPT**\n")
        print("| run | new dev EM | new test EM | known dev EM | new dev EM at 1/4, 1/2, 3/4, all |\n|---|---|---|---|---|")
        for name, c in p["sweeps"].items():
            print(f"| {name} | {pm(c['dev_exact_match'])} | {pm(c['test_exact_match'])} | {pm(c['known_dev'])} | {curve(c)} |")
        print(f"\nChosen on dev: {p.get('chosen')}\n")
    if "table1" in p:
        print("**Table 1, pretrained regime: new people's test EM % (knowledge acquired) and known people's test EM % after it "
              "(knowledge kept); per-seed difference to the baseline in points; fact-token loss on the new people's documents**\n")
        print("| arm | (b) mixed: new | per seed vs baseline | known kept | (a) docs, then QA: new | per seed vs baseline | known kept "
              "| tokens (b) / (a) | fact loss, unseen formats (b) / (a) | unseen paraphrases (b) / (a) |\n|---|---|---|---|---|---|---|---|---|---|")
        t1, base = p["table1"], p["table1"].get("baseline", {})
        for arm, c in t1.items():
            m, q = c.get("mixed", {}), c.get("sequential", {})  # the protocols run as separate parts
            print(f"| {arm} | {pm(m.get('test_exact_match'))} | {per_seed_delta(m.get('per_seed_test'), base.get('mixed', {}).get('per_seed_test'))} "
                  f"| {pm(m.get('known_test'))} | {pm(q.get('test_exact_match'))} | {per_seed_delta(q.get('per_seed_test'), base.get('sequential', {}).get('per_seed_test'))} "
                  f"| {pm(q.get('known_test'))} | {pm(m.get('tokens'), 1e-6, 2)}M / {pm(q.get('tokens'), 1e-6, 2)}M "
                  f"| {pm(m.get('fact_loss_formats'), 1, 3)} / {pm(q.get('fact_loss_formats'), 1, 3)} "
                  f"| {pm(m.get('fact_loss_paraphrases'), 1, 3)} / {pm(q.get('fact_loss_paraphrases'), 1, 3)} |")
        print()
    if "table2" in p:
        shares = [rep["categories"]["base"] for rep in p["table2"].get("one_stage", [])]
        if shares:
            cats = {c: mean_std([100 * s[c] / sum(s.values()) for s in shares]) for c in CATS}
            print("**Table 2, pretrained regime: the base model's SliCK categories on the fine-tuning pool (long-tail and known test "
                  "people), beside SliCK's on EntityQuestions**\n\n| | " + " | ".join(CATS) + " |\n" + "|---" * 5 + "|")
            print("| this base model | " + " | ".join(pm(cats[c], 1) + "%" for c in CATS) + " |\n| SliCK (Gekhman et al.) | 24% | 23% | 17% | 36% |\n")
    if "unknown" in p:
        print(f"**SliCK's experiment: a fine-tuning set of {' / '.join(map(str, p.get('unknown_n', {}).values()))} items (seed "
              f"{' / '.join(p.get('unknown_n', {}))}), a share of it Unknown to the base model; "
              "test EM % at the dev-chosen early stop and at the end of training**\n\n| Unknown share | early stop | end of training | best step |\n|---|---|---|---|")
        for frac, c in p["unknown"].items():
            print(f"| {100 * float(frac):.0f}% | {pm(c['early_stop'])} | {pm(c['end'])} | {pm(c['best_step'], 1, 0)} |")
        print()
    if "table2" in p:
        print("**gradual.py against same-budget baselines, pretrained regime (the SliCK pool's train split; test: its test split)**\n")
        gradual_table(p["table2"])

def figures(r, out_dir):
    """Table 1 as bars with every seed's point, SliCK's %Unknown curve, and dev learning curves, as PNGs."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no figures: pip install matplotlib)")
        return []
    written, p = [], r.get("pretrained", {})
    tables = [(name, t, key) for name, t, key in (("from scratch", r.get("table1"), "per_seed_test"), ("pretrained", p.get("table1"), "per_seed_test")) if t]
    if tables:
        fig, axes = plt.subplots(1, len(tables), figsize=(6.5 * len(tables), 4.2), squeeze=False)
        for ax, (name, t, key) in zip(axes[0], tables):
            for j, protocol in enumerate(p for p in ("mixed", "sequential") if all(p in c for c in t.values())):
                xs = [i + 0.4 * j for i in range(len(t))]
                means = [100 * (t[a][protocol]["test_exact_match"] or {"mean": 0})["mean"] for a in t]
                ax.bar(xs, means, width=0.38, label={"mixed": "(b) mixed", "sequential": "(a) docs, then QA"}[protocol])
                for x, a in zip(xs, t):
                    pts = [100 * v for v in t[a][protocol].get(key, []) if v is not None]
                    ax.scatter([x] * len(pts), pts, color="black", s=8, zorder=3)
            ax.set_xticks([i + 0.2 for i in range(len(t))], list(t), rotation=40, ha="right", fontsize=7)
            ax.set_ylabel("test EM % (new / held-out people)")
            ax.set_title(f"Table 1, {name} regime (dots: seeds)")
            ax.legend(fontsize=7)
        written.append(save_figure(fig, out_dir, "table1.png"))
    unknown = [(name, u) for name, u in (("pretrained regime", p.get("unknown")), ("real model", r.get("real", {}).get("slick", {}).get("unknown"))) if u]
    if unknown:
        fig, axes = plt.subplots(1, len(unknown), figsize=(5 * len(unknown), 3.6), squeeze=False)
        for ax, (name, u) in zip(axes[0], unknown):
            fr = [100 * float(f) for f in u]
            for key, label in (("early_stop", "early stop (dev)"), ("end", "end of training")):
                cells = [c[key] or {"mean": float("nan"), "std": 0} for c in u.values()]
                ax.errorbar(fr, [100 * c["mean"] for c in cells], yerr=[100 * c["std"] for c in cells], marker="o", capsize=3, label=label)
            ax.set_xlabel("Unknown items in the fine-tuning set (%)")
            ax.set_ylabel("test EM %")
            ax.set_title(f"SliCK's experiment, {name}")
            ax.legend(fontsize=8)
        written.append(save_figure(fig, out_dir, "unknown.png"))
    curves = [(f"pretrained: {a}", c["mixed"]["curve"]) for a, c in p.get("table1", {}).items()] + \
             [(f"scratch: {n.replace('mixed_', '')}", c["curve"]) for n, c in r.get("sweeps", {}).items()]
    curves = [(n, pts) for n, pts in curves if pts]
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        for n, pts in curves:
            ax = axes[0] if n.startswith("pretrained") else axes[1]
            ax.plot([s for s, _ in pts], [100 * v for _, v in pts], marker=".", label=n.split(": ", 1)[1])
        for ax, title in zip(axes, ("pretrained regime: mixed CPT, new people", "from-scratch regime: mixed training sweeps")):
            ax.set_xlabel("step")
            ax.set_ylabel("dev EM %")
            ax.set_title(title, fontsize=9)
            if ax.lines:
                ax.legend(fontsize=6)
        written.append(save_figure(fig, out_dir, "curves.png"))
    if r.get("real", {}).get("table1"):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        real.figure(r["real"], ax)
        written.append(save_figure(fig, out_dir, "real.png"))
    return written

def save_figure(fig, out_dir, name):
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return path

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="reproduce.py's results.json")
    ap.add_argument("--figures", default=None, help="folder for the PNGs (default: beside results.json)")
    args = ap.parse_args(argv)
    r = json.load(open(args.results))
    print("## The from-scratch regime\n")
    cfg = r["config"]
    print(f"Mode `{r['mode']}` on {r.get('machine', '?')}: {cfg['people']} people, {cfg['steps']} steps of {cfg['batch']} examples, "
          f"{len(cfg['seeds'])} seed(s) per cell. Mean ± std over seeds.\n")
    if "sweeps" in r:
        print("**Sweeps, mixed training: exact match % on dev and test people (K formats; SAM radius rho)**\n")
        print("| run | dev EM | test EM | dev EM at 1/4, 1/2, 3/4, all of the steps | tokens trained |\n|---|---|---|---|---|")
        for name, c in r["sweeps"].items():
            print(f"| {name.replace('mixed_', '')} | {pm(c['dev_exact_match'])} | {pm(c['test_exact_match'])} | {curve(c)} | {pm(c['tokens'], 1e-6, 2)}M |")
        print(f"\nChosen on dev: {r.get('chosen')}\n")
    if "table1" in r:
        print("**Table 1: QA exact match (%) on held-out (test) people; fact-token loss on their documents in unseen formats and paraphrases**\n")
        print("| arm | (b) mixed | (a) documents, then QA tuning | fact loss, unseen formats (b) | unseen paraphrases (b) |")
        print("|---|---|---|---|---|")
        for arm, c in r["table1"].items():
            m, s = c["mixed"], c["sequential"]
            print(f"| {arm} | {pm(m['test_exact_match'])} | {pm(s['test_exact_match'])} | {pm(m.get('fact_loss_formats'), 1, 3)} | "
                  f"{pm(m.get('fact_loss_paraphrases'), 1, 3)} |")
        print()
    if "search" in r:
        print("**Search: baseline and SAM in other settings (mixed training, exact match %, fact loss on unseen formats)**\n")
        print("| setting | arm | dev EM | test EM | dev EM at 1/4, 1/2, 3/4, all | fact loss, unseen formats |\n|---|---|---|---|---|---|")
        for setting, arms in r["search"].items():
            for arm, c in arms.items():
                print(f"| {setting} | {arm} | {pm(c['dev_exact_match'])} | {pm(c['test_exact_match'])} | {curve(c)} | {pm(c.get('fact_loss_formats'), 1, 3)} |")
        print()
    for protocol, fl in r.get("fact_loss_vs_test_em", {}).items():
        print(f"Pearson correlation of fact-token loss with test EM, {protocol} training, over {fl['points']} runs: "
              f"{fl['pearson_formats']:.2f} (unseen formats), {fl['pearson_paraphrases']:.2f} (unseen paraphrases).\n")
    if "table2" in r:
        print("**Table 2: gradual learning against same-budget baselines (train split: half of the held-out people; test: the other half)**\n")
        gradual_table(r["table2"])
    if "large" in r:
        print(f"**Larger world: {r['large']['config']}**\n\n| arm | test EM | dev EM |\n|---|---|---|")
        for arm, c in r["large"]["cells"].items():
            print(f"| {arm} | {pm(c['test_exact_match'])} | {pm(c['dev_exact_match'])} |")

    if "pretrained" in r:
        print("## The pretrained regime\n")
        pretrained_section(r["pretrained"])
    if "real" in r:
        print("## The real model\n")
        real.report(r["real"], pm, per_seed_delta, gradual_table)
    for path in figures(r, args.figures or os.path.dirname(os.path.abspath(args.results))):
        print(f"figure: {path}")

if __name__ == "__main__":
    main()
