"""
README's Results tables from reproduce.py's results.json (markdown on stdout).

    python experiments/report.py experiments/results/full/results.json
"""
import json
import statistics
import sys

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

def main(path):
    r = json.load(open(path))
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
        print("| run | stage-1 items | HighlyKnown+MaybeKnown at the end | gained | lost (of HighlyKnown) | test EM % |")
        print("|---|---|---|---|---|---|")
        for mode, reps in r["table2"].items():
            if not reps:
                continue
            last = "stage2" if "stage2" in reps[0]["categories"] else "stage1"
            k = [rep["knowledge"][f"base->{last}"] for rep in reps]
            print(f"| {mode} | {pm(mean_std([rep['n_stage1'] for rep in reps]), 1, 1)} | {pm(mean_std([x['known_after'] for x in k]), 1, 1)} "
                  f"| {pm(mean_std([x['gained'] for x in k]), 1, 1)} | {pm(mean_std([x['lost'] for x in k]), 1, 1)} "
                  f"| {pm(mean_std([rep['test_exact_match'][last] for rep in reps]))} |")
        base = mean_std([rep["test_exact_match"]["base"] for rep in r["table2"].get("gradual", [])])
        print(f"| base model (no fine-tuning) | | {pm(mean_std([rep['knowledge']['base->stage1']['known_before'] for rep in r['table2'].get('gradual', [])]), 1, 1)}"
              f" | | | {pm(base)} |")
        reps = r["table2"].get("gradual", [])
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
    if "large" in r:
        print(f"**Larger world: {r['large']['config']}**\n\n| arm | test EM | dev EM |\n|---|---|---|")
        for arm, c in r["large"]["cells"].items():
            print(f"| {arm} | {pm(c['test_exact_match'])} | {pm(c['dev_exact_match'])} |")

if __name__ == "__main__":
    main(sys.argv[1])
