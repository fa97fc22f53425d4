"""The results page is what its sweeps' files say: the committed page is the generated one, and
its numbers are the runs' own, checked here against the summaries read directly."""

import json
import statistics

import pytest

from rlsys.observability import results_page

from ...conftest import REPO


def test_the_committed_page_is_the_generated_one(monkeypatch):
    monkeypatch.chdir(REPO)
    assert results_page.main(["--check"]) == 0, "run `python -m rlsys.observability.results_page`"


def test_every_seeds_accuracy_and_the_mean_are_on_the_page():
    page = (REPO / "docs" / "results.md").read_text()
    folders = sorted(p for p in (REPO / "docs" / "results" / "sweeps").iterdir() if (p / "seeds.json").is_file())
    assert folders, "no sweep in docs/results/sweeps"
    for folder in folders:
        seeds = json.loads((folder / "seeds.json").read_text())["seeds"]
        summaries = [json.loads((folder / f"seed-{s}.summary.json").read_text()) for s in seeds]
        section = page.split(f"## {folder.name}\n", 1)[1].split("\n## ", 1)[0]
        for seed, s in zip(seeds, summaries):
            before, after = s["eval_before"]["accuracy"], s["eval_after"]["accuracy"]
            assert f"| {seed} | {before:.3f} -> {after:.3f} |" in section
        after = [s["eval_after"]["accuracy"] for s in summaries]
        sd = statistics.stdev(after) if len(after) > 1 else 0.0
        assert "| accuracy |" in section and f"{statistics.fmean(after):.3f} ± {sd:.3f}" in section


def test_a_sweep_added_from_a_seeds_folder_appears_and_the_old_page_is_stale(tmp_path, monkeypatch):
    run_root = tmp_path / "runs" / "mine"
    for seed, (b, a) in {0: (0.25, 0.5), 1: (0.25, 0.75)}.items():
        (run_root / f"seed-{seed}").mkdir(parents=True)
        (run_root / f"seed-{seed}" / "summary.json").write_text(json.dumps(
            {"eval_before": {"accuracy": b, "n": 4.0}, "eval_after": {"accuracy": a, "n": 4.0}, "wall_seconds": 10.0}))
    (run_root / "seeds.json").write_text(json.dumps({
        "config": "c.yaml", "overrides": ["a=1"], "seeds": [0, 1], "machine": {"cpu": "X", "kind": "AVX2", "cores": 2,
                                                                            "gpus": []},
        "summary": {"accuracy": {"before": {"mean": 0.25, "sd": 0.0, "min": 0.25, "max": 0.25, "runs": 2},
                                 "after": {"mean": 0.625, "sd": 0.1768, "min": 0.5, "max": 0.75, "runs": 2},
                                 "change": {"mean": 0.375, "sd": 0.1768, "min": 0.25, "max": 0.5, "runs": 2}}}}))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("# Results\n")
    assert results_page.main(["--check"]) == 1
    assert results_page.main(["--add", str(run_root)]) == 0
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "## mine" in page and "`rlsys seeds c.yaml a=1 --seeds 0 1`" in page
    assert "Machine: X (AVX2 kind), 2 cores, no GPU." in page
    assert "| 0 | 0.250 -> 0.500 | 10 |" in page and "| 1 | 0.250 -> 0.750 | 10 |" in page
    assert "| accuracy | 0.250 ± 0.000 [0.250, 0.250] | 0.625 ± 0.177 [0.500, 0.750] | 0.375 ± 0.177" in page
    assert results_page.main(["--check"]) == 0


def test_an_unfinished_sweep_is_refused_and_nothing_is_copied(tmp_path, monkeypatch):
    run_root = tmp_path / "runs" / "half"
    (run_root / "seed-0").mkdir(parents=True)
    (run_root / "seed-0" / "summary.json").write_text(json.dumps({"eval_before": {}, "eval_after": {}}))
    (run_root / "seeds.json").write_text(json.dumps({"config": "c.yaml", "seeds": [0, 1], "summary": {}}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"seeds \[1\] have no summary.json"):
        results_page.main(["--add", str(run_root)])
    assert not (tmp_path / "docs" / "results" / "sweeps" / "half").exists()
