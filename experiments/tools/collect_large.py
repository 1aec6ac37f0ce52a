import json, glob, os, sys
out = {}
for p in sorted(glob.glob("experiments/runs/full/large_*")):
    a = os.path.join(p, "args.json"); l = os.path.join(p, "log.jsonl")
    out[os.path.basename(p)] = {"metrics": json.load(open(a))["metrics"] if os.path.exists(a) else None,
                                "last_log": open(l).read().splitlines()[-3:] if os.path.exists(l) else None}
print(json.dumps(out, indent=1))
