"""
The figures of RESULTS.md, drawn from reproduce.py's results.json: Table 1 of both small regimes as bars with every
seed a dot, SliCK's %Unknown experiment, dev learning curves, and the real model's knowledge acquired against kept.
report.py calls figures() after its tables; matplotlib is an optional extra (pip install matplotlib).

    python experiments/report.py experiments/results/full/results.json --figures /tmp/figs
"""
import os


def figures(r, out_dir):
    """Table 1 as bars with every seed's point, SliCK's %Unknown curve, dev learning curves and the real model's
    acquired against kept, as PNGs; their paths."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no figures: pip install matplotlib)")
        return []
    written = []
    for draw, name in ((table1_figure, "table1.png"), (unknown_figure, "unknown.png"), (curves_figure, "curves.png"),
                       (real_figure, "real.png")):
        fig = draw(plt, r)
        if fig is not None:
            written.append(save_figure(fig, out_dir, name))
    return written


def table1_figure(plt, r):
    """Table 1 of the from-scratch and pretrained regimes: bars per protocol, a dot per seed (None: no table)."""
    p = r.get("pretrained", {})
    tables = [(name, t) for name, t in (("from scratch", r.get("table1")), ("pretrained", p.get("table1"))) if t]
    if not tables:
        return None
    fig, axes = plt.subplots(1, len(tables), figsize=(6.5 * len(tables), 4.2), squeeze=False)
    for ax, (name, t) in zip(axes[0], tables):
        for j, protocol in enumerate(pr for pr in ("mixed", "sequential") if all(pr in c for c in t.values())):
            xs = [i + 0.4 * j for i in range(len(t))]
            means = [100 * (t[a][protocol]["test_exact_match"] or {"mean": 0})["mean"] for a in t]
            ax.bar(xs, means, width=0.38, label={"mixed": "(b) mixed", "sequential": "(a) docs, then QA"}[protocol])
            for x, a in zip(xs, t):
                pts = [100 * v for v in t[a][protocol].get("per_seed_test", []) if v is not None]
                ax.scatter([x] * len(pts), pts, color="black", s=8, zorder=3)
        ax.set_xticks([i + 0.2 for i in range(len(t))], list(t), rotation=40, ha="right", fontsize=7)
        ax.set_ylabel("test EM % (new / held-out people)")
        ax.set_title(f"Table 1, {name} regime (dots: seeds)")
        ax.legend(fontsize=7)
    return fig


def unknown_figure(plt, r):
    """SliCK's %Unknown experiment, pretrained regime and real model: test EM at the early stop and at the end."""
    unknown = [(name, u) for name, u in (("pretrained regime", r.get("pretrained", {}).get("unknown")),
                                         ("real model", r.get("real", {}).get("slick", {}).get("unknown"))) if u]
    if not unknown:
        return None
    fig, axes = plt.subplots(1, len(unknown), figsize=(5 * len(unknown), 3.6), squeeze=False)
    for ax, (name, u) in zip(axes[0], unknown):
        fr = [100 * float(f) for f in u]
        for key, label in (("early_stop", "early stop (dev)"), ("end", "end of training")):
            cells = [c[key] or {"mean": float("nan"), "std": 0} for c in u.values()]
            ax.errorbar(fr, [100 * c["mean"] for c in cells], yerr=[100 * c["std"] for c in cells], marker="o",
                        capsize=3, label=label)
        ax.set_xlabel("Unknown items in the fine-tuning set (%)")
        ax.set_ylabel("test EM %")
        ax.set_title(f"SliCK's experiment, {name}")
        ax.legend(fontsize=8)
    return fig


def curves_figure(plt, r):
    """Dev learning curves: the pretrained regime's Table 1 (mixed) and the from-scratch sweeps."""
    curves = [(f"pretrained: {a}", c["mixed"]["curve"]) for a, c in r.get("pretrained", {}).get("table1", {}).items()]
    curves += [(f"scratch: {n.replace('mixed_', '')}", c["curve"]) for n, c in r.get("sweeps", {}).items()]
    curves = [(n, pts) for n, pts in curves if pts]
    if not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for n, pts in curves:
        ax = axes[0] if n.startswith("pretrained") else axes[1]
        ax.plot([s for s, _ in pts], [100 * v for _, v in pts], marker=".", label=n.split(": ", 1)[1])
    titles = ("pretrained regime: mixed CPT, new people", "from-scratch regime: mixed training sweeps")
    for ax, title in zip(axes, titles):
        ax.set_xlabel("step")
        ax.set_ylabel("dev EM %")
        ax.set_title(title, fontsize=9)
        if ax.lines:
            ax.legend(fontsize=6)
    return fig


def real_figure(plt, r):
    """Knowledge acquired against knowledge kept on the real model, every seed of every arm a dot (circles: (c)
    docs, crosses: (b) mixed)."""
    q = r.get("real", {})
    if not q.get("table1"):
        return None
    from matplotlib import colormaps
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    tab20 = colormaps["tab20"].colors
    colors = tab20[0::2] + tab20[1::2]  # 20: ten hues, then their light shades (more than ten arms)
    for i, (arm, c) in enumerate(q.get("table1", {}).items()):
        for p, marker in (("docs", "o"), ("mixed", "x")):
            pts = [(k, t) for k, t in zip(c.get(p, {}).get("per_seed_kept", []), c.get(p, {}).get("per_seed_test", []))
                   if None not in (k, t)]
            ax.scatter([100 * k for k, _ in pts], [100 * t for _, t in pts], marker=marker, color=colors[i % 20],
                       label=arm if p == "docs" else None)
    ax.set_xlabel("knowledge kept: EM % on EntityQuestions it answered before")
    ax.set_ylabel("knowledge acquired: new test people EM %")
    ax.set_title("Real model (SmolLM2-135M): o (c) documents only, x (b) mixed", fontsize=9)
    ax.legend(fontsize=6)
    return fig


def save_figure(fig, out_dir, name):
    """Write a figure to out_dir/name (atomically) and close it; its path."""
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=110)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return path
