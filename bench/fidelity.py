"""Which low fidelity ranks fine-tuning configs the way full training does (issue 23)?

For N configs of a space (the shipped recipe first, then random points of the space, seeded), two runs each on
one prepared corpus, one at a time (2 cores):
  full   all of train, the config's epochs (schedule planned over them), dev evaluated 4x an epoch. Its
         prefix *is* the progress design's low rung (the schedule is planned over the full budget, so
         stopping a run after 1/4, 1/2, 1 or 2 epochs leaves exactly that prefix): P@0.25 ... P@2 are read
         from it, with the CPU-seconds to get there.
  frac   the design the space shipped with: a fixed share of train's dialogues (0.35), the schedule planned
         over the same epochs, rung 1 after one epoch (F35@1).
Full-training score: the best epoch-end dev wF1 (what `train` keeps). Spearman of each design's rung-1 dev wF1
against it, over the configs. Resumable: one JSON per config and run in --out; rerun to continue or to print.

    .venv/bin/python bench/fidelity.py --prepared runs/meld --out runs/fidelity --configs 8
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from mer_search.core.dirs import nest
from mer_search.training.config import find_config, load_config
from mer_search.training.experiment import Experiment
from mer_search.search.space import find_space, load_space

POINTS = (0.25, 0.5, 1.0, 2.0)        # progress-design rungs read from the full run (epochs of all of train)
FRACTION = 0.35


class Timeline:
    """Every evaluation with the wall and CPU seconds since the run began."""

    def __init__(self):
        self.rows, self.t0, self.c0 = [], time.perf_counter(), time.process_time()

    def report(self, epoch: float, metrics: dict) -> None:
        row = {"epoch": float(epoch), "dev_wf1": float(metrics["dev_wf1"]),
               "wall_s": time.perf_counter() - self.t0, "cpu_s": time.process_time() - self.c0}
        self.rows.append(row)
        logging.info("  %.2f epochs: dev wF1 %.4f  (%.0f s)", row["epoch"], row["dev_wf1"], row["wall_s"])


def configs(space_name: str, prepared: str, n: int, seed: int) -> list[tuple[str, dict]]:
    """The shipped recipe, then n-1 random points of the space (its fixed and final values applied)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    recipe = load_config(find_config(Path(space_name).stem))       # a space file's recipe: by its name
    recipe["data"]["prepared"] = prepared
    out = [("recipe", recipe)]
    space = load_space(find_space(space_name))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    epochs = int(recipe["train"]["epochs"])
    for i in range(1, n):
        trial = study.ask()
        flat = {**space.fixed, **space.sample(trial), **space.final, "data.prepared": prepared,
                "train.epochs": epochs, "train.patience": 0}
        study.tell(trial, 0.0)
        out.append((f"random{i}", nest(flat)))
    return out


def run_once(cfg: dict, path: Path, fraction: float | None, epochs: int) -> dict:
    cfg = json.loads(json.dumps(cfg))
    cfg["data"]["train_fraction"] = fraction or 1.0
    cfg["train"].update(schedule_epochs=epochs, epochs=1 if fraction else epochs, patience=0,
                        evals_per_epoch=1 if fraction else 4, seed=0)
    if path.exists():
        done = json.loads(path.read_text())
        if done["config"] != cfg:           # another space (or seed) drew another config under this name
            raise SystemExit(f"{path} holds another config than this space and seed draw: use another --out")
        return done
    exp = Experiment.setup(cfg, seed=0)
    timeline = Timeline()
    from mer_search.training.train import fit

    fit(exp.model, exp.train_batches, exp.dev_batches, exp.train, timeline)
    result = {"config": cfg, "evals": timeline.rows, "n_train": int(len(exp.train_batches.data.rows))}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    return result


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def summarize(results: dict[str, dict]) -> str:
    names = [k for k in results if "full" in results[k]]
    full = {k: max(e["dev_wf1"] for e in results[k]["full"]["evals"] if e["epoch"].is_integer()) for k in names}
    lines = [f"configs with a full run: {len(names)}", "",
             "| config | full-training dev wF1 | " + " | ".join(f"P@{p:g}" for p in POINTS) + f" | F{FRACTION * 100:.0f}@1 |",
             "|---|---|" + "---|" * (len(POINTS) + 1)]
    design: dict[str, list[tuple[float, float, float]]] = {}
    for k in names:
        evals = results[k]["full"]["evals"]
        cells = []
        for p in POINTS:
            e = next((e for e in evals if abs(e["epoch"] - p) < 1e-6), None)
            cells.append(f"{e['dev_wf1']:.3f}" if e else "-")
            if e:
                design.setdefault(f"P@{p:g}", []).append((e["dev_wf1"], full[k], e["cpu_s"]))
        f = results[k].get("frac")
        cells.append(f"{f['evals'][-1]['dev_wf1']:.3f}" if f else "-")
        if f:
            design.setdefault(f"F{FRACTION * 100:.0f}@1", []).append(
                (f["evals"][-1]["dev_wf1"], full[k], f["evals"][-1]["cpu_s"]))
        lines.append(f"| {k} | {full[k]:.3f} | " + " | ".join(cells) + " |")
    full_cpu = [results[k]["full"]["evals"][-1]["cpu_s"] for k in names]
    lines += ["", "| design (rung 1) | configs | Spearman vs full training | CPU-s per trial to rung 1 | "
                  "Spearman per CPU-hour | after refitting its top 2: full-training dev wF1 (best possible) |",
              "|---|---|---|---|---|---|"]
    for d, rows in design.items():
        if len(rows) < 3:
            continue
        rho = spearman([r[0] for r in rows], [r[1] for r in rows])
        cpu = float(np.mean([r[2] for r in rows]))
        top2 = sorted(rows, key=lambda r: -r[0])[:2]       # what a refit of the rung's top 2 would export
        lines.append(f"| {d} | {len(rows)} | {rho:+.2f} | {cpu:.0f} | {rho / (cpu / 3600):+.2f} | "
                     f"{max(r[1] for r in top2):.3f} ({max(r[1] for r in rows):.3f}) |")
    if full_cpu:
        lines.append(f"| full training | {len(names)} | +1.00 | {np.mean(full_cpu):.0f} | - |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--out", default="runs/fidelity")
    ap.add_argument("--space", default="text_finetune", help="a shipped space's name or a space file (named like "
                    "its recipe: text_finetune.yaml)")
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="seeds the random configs")
    ap.add_argument("--summary-only", action="store_true", help="print what is measured, run nothing")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from mer_search.training.train import pin_threads

    pin_threads(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prepared = str(Path(args.prepared).resolve())
    results: dict[str, dict] = {}
    for name, cfg in configs(args.space, prepared, args.configs, args.seed):
        epochs = int(cfg["train"]["epochs"])
        results[name] = {}
        for run, fraction in (("frac", FRACTION), ("full", None)):
            path = out / f"{name}.{run}.json"
            if args.summary_only:
                if path.exists():
                    results[name][run] = json.loads(path.read_text())
                continue
            logging.info("%s: %s run", name, run)
            results[name][run] = run_once(cfg, path, fraction, epochs)
        print(summarize(results), flush=True)


if __name__ == "__main__":
    main()
