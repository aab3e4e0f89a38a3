"""MELD -> Parquet tables + memory-mappable log-mel shards.

Knows MELD's layout and quirks; knows nothing of models or search.
"""

from data_prep.errors import PrepError

__all__ = ["PrepError"]
