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

def main(path):
    r = json.load(open(path))
    n = len(r["config"]["seeds"])
    print(f"Mode `{r['mode']}` on {r.get('machine', '?')}, {n} seed(s) per cell, {r.get('wall_seconds', 0) / 3600:.1f} h of wall time.\n")
    if "sweeps" in r:
        print("**Sweeps (mixed training), exact match %, mean ± std over seeds; K and rho are chosen by dev**\n")
        print("| run | dev EM | test EM | tokens trained |\n|---|---|---|---|")
        for name, c in r["sweeps"].items():
            print(f"| {name.replace('mixed_', '')} | {pm(c['dev_exact_match'])} | {pm(c['test_exact_match'])} | {pm(c['tokens'], 1e-6, 2)}M |")
        print(f"\nChosen on dev: {r.get('chosen')}\n")
    if "table1" in r:
        print("**Table 1: QA exact match (%) on held-out (test) people, same optimizer steps per protocol**\n")
        print("| arm | (b) mixed: docs + train QA | (a) docs, then QA tuning | fact-token loss, unseen formats | unseen paraphrases |")
        print("|---|---|---|---|---|")
        for arm, c in r["table1"].items():
            print(f"| {arm} | {pm(c['mixed']['test_exact_match'])} | {pm(c['sequential']['test_exact_match'])} | "
                  f"{pm(c['fact_loss_formats'], 1, 3)} | {pm(c['fact_loss_paraphrases'], 1, 3)} |")
        fl = r.get("fact_loss_vs_test_em", {})
        if fl.get("pearson_formats") is not None:
            print(f"\nPearson correlation of fact-token loss with mixed-training test EM over {fl['points']} runs: "
                  f"{fl['pearson_formats']:.2f} (unseen formats), {fl['pearson_paraphrases']:.2f} (unseen paraphrases).\n")
    if "table2" in r:
        print("**Table 2: gradual learning against same-budget baselines (gradual-train half of the held-out people)**\n")
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
        reps = r["table2"].get("gradual", [])
        if reps:
            rep = reps[0]
            print(f"\nSeed 0, gradual: categories {json.dumps(rep['categories'])}\n")
            for name, m in {**rep["transitions"], "probe noise (base probed twice)": rep["probe_noise"]}.items():
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
