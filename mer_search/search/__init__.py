"""The search: YAML spaces -> Optuna define-by-run -> Ray Tune trials. The only package that imports
ray.tune and optuna (space.py needs neither: it only calls the trial object it is given)."""
