"""mer-search: hyperparameter search for multimodal emotion recognition on MELD."""

__version__ = "0.1.0"


def load(path):
    """A model bundle (or a checkpoint) to label new dialogues: `mer_search.load(path).predict(df)`."""
    from mer_search.bundle import load as load_bundle

    return load_bundle(path)
