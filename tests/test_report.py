"""experiments/report.py: the markdown of both regimes and the figures (Table 1 bars with every seed, the
%Unknown curve, dev learning curves), drawn from a small results.json in reproduce.py's layout."""
import json

import pytest

from conftest import run

def ms(v):
    """A mean ± std cell."""
    return {"mean": v, "std": 0.02, "n": 3}

def cell(test, seeds=(0.0, 0.02, -0.02), known=None):
    c = {"test_exact_match": ms(test), "dev_exact_match": ms(test + 0.01), "tokens": ms(1e6),
         "per_seed_test": [test + d for d in seeds], "curve": [[100, test / 2], [200, test]],
         "fact_loss_formats": ms(1.0), "fact_loss_paraphrases": ms(2.0)}
    if known is not None:
        c |= {"known_test": ms(known), "known_dev": ms(known), "per_seed_known_test": [known] * 3}
    return c

def report(categories):
    zeros = {a: {b: 0 for b in categories} for a in categories}
    return {"categories": {"base": categories, "stage1": categories}, "n_stage1": 5,
            "transitions": {"base->stage1": zeros}, "probe_noise": zeros,
            "knowledge": {"base->stage1": {"gained": 1, "kept": 2, "lost": 0, "known_before": 3, "known_after": 4}},
            "test_exact_match": {"base": 0.3, "stage1": 0.4},
            "test_exact_match_by_category": {"base": {"Unknown": 0.1}}}

def test_report_draws_both_regimes_and_the_figures(tmp_path):
    pytest.importorskip("matplotlib")  # an optional extra, for the figures only (tests/requirements.txt installs it)
    cats = {"HighlyKnown": 10, "MaybeKnown": 5, "WeaklyKnown": 3, "Unknown": 2}
    arms = ["baseline", "aug4", "sam0.05"]
    results = {"mode": "quick", "machine": "test", "config": {"people": 10, "steps": 5, "batch": 4, "seeds": [0, 1, 2]},
               "sweeps": {f"mixed_{a}": cell(0.3) for a in arms}, "chosen": {"K": 4},
               "table1": {a: {"mixed": cell(0.3 + i / 10), "sequential": cell(0.1)} for i, a in enumerate(arms)},
               "table2": {m: [report(cats)] for m in ("gradual", "one_stage")},
               "pretrained": {"config": {"known": 6, "longtail": 6, "new": 4, "base_steps": 10, "seeds": [0, 1, 2]},
                              "base": {"known_test": {"mean": 0.9, "std": 0.01}, "new": {"mean": 0.0, "std": 0.0},
                                       "curve": []},
                              "table1": {a: {"mixed": cell(0.5 + i / 10, known=0.6), "sequential": cell(0.2, known=0.7)}
                                         for i, a in enumerate(arms)},
                              "unknown_n": {"0": 20},
                              "unknown": {str(f): {"early_stop": {"mean": 0.5 - f / 4, "std": 0.01},
                                                   "end": {"mean": 0.45 - f / 3, "std": 0.02},
                                                   "best_step": {"mean": 10, "std": 0}, "curve": []}
                                          for f in (0.0, 0.5, 1.0)},
                              "table2": {m: [report(cats)] for m in ("gradual", "one_stage")}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    out = run("experiments/report.py", path, "--figures", tmp_path / "figs").stdout
    assert "## The from-scratch regime" in out and "## The pretrained regime" in out
    assert "Table 1, pretrained regime" in out and "| aug4 | 60.0 ± 2.0 | +10.0 / +10.0 / +10.0 | 60.0 ± 2.0 |" in out
    assert "| this base model | 50.0 ± 0.0% | 25.0 ± 0.0% | 15.0 ± 0.0% | 10.0 ± 0.0% |" in out
    assert "| 50% | 37.5 ± 1.0 | 28.3 ± 2.0 | 10 ± 0 |" in out
    for name in ("table1.png", "unknown.png", "curves.png"):
        png = (tmp_path / "figs" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
        assert f"figure: {tmp_path / 'figs' / name}" in out

def test_every_table_of_results_md_is_a_piece_of_report_output(tmp_path):
    """RESULTS.md's tables are report.py's own output on the committed results.json, verbatim: no table there is
    typed by hand (the prose between them is)."""
    import os
    import re
    from conftest import ROOT
    out = run("experiments/report.py", os.path.join(ROOT, "experiments", "results", "full", "results.json"),
              "--figures", tmp_path).stdout
    tables = re.findall(r"(?m)(?:^\|.*\n)+", open(os.path.join(ROOT, "RESULTS.md"), encoding="utf-8").read())
    assert len(tables) > 10
    for table in tables:
        assert table in out, table[:300]
