"""mer-search: hyperparameter search for multimodal emotion recognition on MELD."""

__version__ = "0.1.0"
