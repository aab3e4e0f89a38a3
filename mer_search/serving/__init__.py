"""Trained models applied to new dialogues: the bundle format (bundle.py) and inference (predict.py)."""
