"""Real local sweeps: Ray Tune trials sampled by Optuna (study in a journal file), early-stopped by ASHA, results
in one Parquet table, W&B offline runs written from the driver, a report, warm starts and nsga2."""

import json
import re
import shutil
import subprocess

import optuna
import pandas as pd
import pytest

from helpers import sweep_study as _study
from mer_search.core.dirs import SweepDir

pytestmark = pytest.mark.ray


def test_local_sweep_with_asha_and_wandb_offline(sweep_dir):
    stored = pd.read_parquet(SweepDir(sweep_dir).trials_path)
    # each trial's config is stored once (JSON); readers get a column per parameter from SweepDir
    assert "config_json" in stored and not any(c.startswith("config/") for c in stored.columns)
    saved = SweepDir(sweep_dir).trials()
    assert saved.trial_id.nunique() == 12
    epochs = saved.groupby("trial_id").training_iteration.max()
    assert epochs.max() == 6 and (epochs < 6).sum() >= 3, f"ASHA should stop some trials early: {epochs.tolist()}"
    assert {"config/model.emb_dim", "config/train.lr", "dev_wf1", "dev_loss", "train_loss", "n_params"} <= set(saved)
    assert saved.dev_wf1.between(0, 1).all()
    assert len(_study(sweep_dir).trials) == 12
    runs = sorted((sweep_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 12
    for run in runs:     # the offline record holds the trial's name, group and every epoch's metric value
        data = next(run.glob("*.wandb")).read_bytes()
        tid = next(t for t in saved.trial_id.unique() if t.encode() in data)
        assert b"tiny-first" in data and b"best_dev_wf1" in data
        assert all(json.dumps(float(v)).encode() in data for v in saved[saved.trial_id == tid].dev_wf1)
    # ASHA's own records were kept beside the study
    rungs = json.loads((sweep_dir / "asha_rungs.json").read_text())
    recorded = {tid for bracket in rungs["brackets"] for _, rec in bracket for tid in rec}
    assert recorded == set(saved.trial_id)


def test_report_ranks_trials_and_writes_plots(sweep_dir):
    from mer_search.search.report import summary_line, write_report

    ranked, page = write_report(sweep_dir, top_k=3)
    saved = pd.read_parquet(sweep_dir / "trials.parquet")
    best = saved.groupby("trial_id").dev_wf1.max()
    assert len(ranked) == 12 and ranked.dev_wf1.is_monotonic_decreasing
    assert ranked.iloc[0].trial_id == best.idxmax() and ranked.iloc[0].dev_wf1 == pytest.approx(best.max())
    stopped = (saved.groupby("trial_id").training_iteration.max() < 6).sum()
    assert (ranked.outcome == "stopped").sum() == stopped
    for name in ("curves.png", "importance.png", "parallel.png", "ranked.csv"):
        assert (sweep_dir / "report" / name).stat().st_size > 1000, name
    html = page.read_text()
    assert best.idxmax() in html and not re.search(r"<script[^>]*\bsrc=", html)     # self-contained: no fetch
    assert html.count('class="plotly-graph-div"') == 3          # curves, importance, parallel coordinates
    assert f"{stopped} stopped early" in summary_line(sweep_dir)


def _chromium(page, tmp_path, script=""):
    """Open a page in headless Chromium: (its DOM after the scripts ran, the console messages it logged)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here (apt-get install chromium; .ci/run installs it)")
    target = tmp_path / "page.html"
    target.write_text(page.read_text().replace("</body>", f"<script>{script}</script></body>"))
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
                        target.as_uri()], capture_output=True, text=True, timeout=120)
    console = re.findall(r":INFO:CONSOLE[^\]]*\] (.*)", r.stderr)
    # the headless software renderer's own GL performance notes are not the page's messages
    return r.stdout, [m for m in console if not m.startswith('"[.WebGL-')]


def test_report_page_opens_in_headless_chromium_without_console_errors(sweep_dir, tmp_path):
    from mer_search.search.report import write_report

    ranked, page = write_report(sweep_dir, top_k=3)
    # the page as it is, plus one click on the trial_id header (the sortable table) reported in the title
    click = ("document.querySelectorAll('table.ranked th')[1].click();"
             "document.title = [...document.querySelectorAll('table.ranked tbody tr')]"
             ".map(r => r.cells[1].textContent).join(',');")
    dom, console = _chromium(page, tmp_path, click)
    assert console == [], console
    assert dom.count("js-plotly-plot") >= 3, "Plotly did not draw the figures"
    assert "<svg" in dom and "parcoords" in dom
    title = re.search(r"<title>(.*?)</title>", dom).group(1)
    assert title.split(",") == sorted(ranked.trial_id, reverse=True)      # first click: descending
    # a categorical parameter's axis shows its values, not codes
    assert "[32, 16]" in dom or "[32,16]" in dom


def test_a_parameter_a_trial_did_not_have_is_a_blank_cell_sorted_last(tmp_path):
    """Conditional parameters (a CNN's kernel on an LSTM trial) show blank, not "nan", and sort below numbers."""
    import pandas as pd

    from mer_search.search.report_html import page, ranked_table

    table = ranked_table(pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "model.kernel": [5.0, None, 3.0, 7.0]}))
    assert "nan" not in table and table.count('title="not a parameter of this trial"') == 1
    path = tmp_path / "p.html"
    path.write_text(page("t", "s", table, []))
    order = "[...document.querySelectorAll('table.ranked tbody tr')].map(r => r.cells[1].textContent).join(',')"
    click = "document.querySelectorAll('table.ranked th')[2]"
    dom, console = _chromium(path, tmp_path, f"{click}.click(); const d = {order}; {click}.click();"
                                             f"document.title = d + '|' + {order};")
    assert console == [], console
    assert re.search(r"<title>(.*?)</title>", dom).group(1) == "d,a,c,b|c,a,d,b"     # descending, ascending


def test_warm_start_into_a_postgres_style_study_url(sweep_dir, prepared, space_file, tmp_path, monkeypatch):
    """--warm-start copies the finished trials; --study-storage puts the study at any SQLAlchemy URL."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    import ray

    from mer_search.search.sweep import SweepOptions, run_sweep

    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    out = tmp_path / "second"
    try:
        table = run_sweep(SweepOptions(space=str(space_file), prepared=str(prepared), out=out, num_samples=3,
                                       max_epochs=2, study_storage=url, warm_start=str(sweep_dir), wandb="disabled"))
    finally:
        ray.shutdown()
    assert table.trial_id.nunique() == 3
    assert not (out / "optuna.journal").exists() and not (out / "optuna.db").exists()
    study, first = _study(url), _study(sweep_dir)
    copied = [t for t in study.trials if "warm_start_from" in t.user_attrs]
    assert len(copied) == 12 and len(study.trials) == 15
    old = {t.number: t for t in first.trials}
    for t in copied:
        src = old[int(t.user_attrs["warm_start_from"].split("#")[1])]
        assert t.params == src.params and t.value == src.value


def test_nsga2_two_objectives_pareto_front_and_uri_storage(prepared, space_file, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    import ray

    from mer_search.search.report import pareto_front, write_report
    from mer_search.search.sweep import SweepOptions, run_sweep

    remote = tmp_path / "bucket"
    out = tmp_path / "nsga"
    try:
        run_sweep(SweepOptions(space=str(space_file), prepared=str(prepared), out=out, num_samples=6, max_epochs=2,
                               sampler="nsga2", storage=f"file://{remote}", wandb="disabled"))
    finally:
        ray.shutdown()
    study = _study(out)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(len(t.values) == 2 for t in study.trials if t.state.name == "COMPLETE")
    # results and checkpoints went to the URI; the table was copied there too
    assert (remote / "tune").is_dir() and not (out / "tune").exists()
    assert pd.read_parquet(remote / "trials.parquet").trial_id.nunique() == 6
    ranked, _ = write_report(out)
    front = pd.read_csv(out / "report" / "pareto.csv")
    assert (out / "report" / "pareto.png").exists() and len(front) >= 1
    for _, f in front.iterrows():      # nothing on the front is beaten on both objectives
        assert not ((ranked.dev_wf1 > f.dev_wf1) & (ranked.n_params <= f.n_params)).any()
    assert len(pareto_front(ranked, "dev_wf1", "max")) == len(front)


def test_persistent_asha_restores_its_rungs_when_unpickled(tmp_path):
    """What Tuner.restore does to the scheduler: unpickle the copy saved at the start of the sweep."""
    import ray.cloudpickle as cloudpickle

    from mer_search.core.plan import SearchSettings
    from mer_search.search.schedulers import make_scheduler

    class T:
        def __init__(self, tid):
            self.trial_id = tid

    search = SearchSettings(max_epochs=8, grace_period=1, reduction_factor=2)
    sched = make_scheduler("asha", search, SweepDir(tmp_path))
    sched.set_search_properties("dev_wf1", "max")
    snapshot = cloudpickle.dumps(sched)           # as in tuner.pkl: taken before any result
    for i, v in enumerate([0.5, 0.6, 0.7]):
        sched.on_trial_add(None, T(f"t{i}"))
        assert sched.on_trial_result(None, T(f"t{i}"), {"training_iteration": 1, "dev_wf1": v}) == "CONTINUE"
    restored = cloudpickle.loads(snapshot)
    assert restored.records()["brackets"] == sched.records()["brackets"]
    restored.on_trial_add(None, T("t9"))
    # judged against the restored rung (cutoff = median of 0.5, 0.6, 0.7), not an empty one
    assert restored.on_trial_result(None, T("t9"), {"training_iteration": 1, "dev_wf1": 0.55}) == "STOP"


def test_cli_sweep_runs_and_reports_bad_input(prepared, space_file, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mer_search.cli import main

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    r = CliRunner().invoke(main, ["sweep", str(space_file), "--prepared", str(prepared), "--out",
                                  str(tmp_path / "s"), "--num-samples", "2", "--max-epochs", "2", "--wandb", "disabled"])
    assert r.exit_code == 0, r.output
    assert "2 trials" in r.output and "best dev_wf1" in r.output
    assert pd.read_parquet(tmp_path / "s" / "trials.parquet").trial_id.nunique() == 2
    r = CliRunner().invoke(main, ["report", str(tmp_path / "s")])
    assert r.exit_code == 0 and "report:" in r.output and (tmp_path / "s" / "report" / "index.html").exists()
    r = CliRunner().invoke(main, ["sync", str(tmp_path / "s")])
    assert r.exit_code == 1 and "no offline W&B runs" in r.stderr


def test_prepared_data_from_a_uri_is_copied_once_per_node(prepared, space_file, tmp_path, monkeypatch):
    """--prepared file://... (as s3:// or gs:// would be): each node copies it once into its cache."""
    import shutil

    import ray

    from data_prep.reader import localize
    from mer_search.search.sweep import SweepOptions, run_sweep

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("MER_SEARCH_CACHE", str(tmp_path / "cache"))
    remote = tmp_path / "bucket" / "prepared"
    shutil.copytree(prepared, remote)
    uri = f"file://{remote}"
    try:
        table = run_sweep(SweepOptions(space=str(space_file), prepared=uri, out=tmp_path / "s", num_samples=2,
                                       max_epochs=2, wandb="disabled"))
    finally:
        ray.shutdown()
    assert table.trial_id.nunique() == 2 and table.dev_wf1.notna().all()
    caches = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert len(caches) == 1 and (caches[0] / ".complete").exists()
    assert (caches[0] / "train.parquet").read_bytes() == (prepared / "train.parquet").read_bytes()
    assert localize(uri) == caches[0]
    manifest = remote / "manifest.json"        # data prepared again under the same URI: a new copy
    manifest.write_text(manifest.read_text().replace('"complete": true', '"complete": true '))
    assert localize(uri) != caches[0]


def test_results_for_a_trial_the_study_already_finished_do_not_stop_the_sweep(tmp_path):
    """The race a driver kill leaves: the study has the trial COMPLETE, Ray's snapshot has it running."""
    from mer_search.search.sweep import ResumableOptunaSearch

    url = f"sqlite:///{tmp_path / 's.db'}"

    def space(trial):
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)

    search = ResumableOptunaSearch(space=space, metric="dev_wf1", mode="max", study_name="s",
                                   storage=optuna.storages.RDBStorage(url))
    assert search.suggest("t1")
    search.on_trial_result("t1", {"dev_wf1": 0.4, "training_iteration": 1})
    study = optuna.load_study(study_name="s", storage=url)
    study.tell(study.trials[0].number, 0.5)              # finished before the crash
    search.on_trial_result("t1", {"dev_wf1": 0.6, "training_iteration": 2})   # the resumed trial reports again
    search.on_trial_complete("t1", {"dev_wf1": 0.6, "training_iteration": 2})
    t = optuna.load_study(study_name="s", storage=url).trials[0]
    assert t.state.name == "COMPLETE" and t.value == 0.5 and t.intermediate_values == {1: 0.4}


def test_the_progress_line_keeps_its_best_across_a_resume():
    from mer_search.search.callbacks import ProgressLine

    before = ProgressLine("dev_wf1", "max", 8, 4)
    before.on_trial_result(0, [], None, {"dev_wf1": 0.61})
    after = ProgressLine("dev_wf1", "max", 8, 4)     # what a restored run starts from, then Tune's snapshot
    after.set_state(before.get_state())
    after.on_trial_result(0, [], None, {"dev_wf1": 0.40})
    assert after.best == 0.61
