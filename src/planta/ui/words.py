"""The UI's plain words for metrics, objectives, gate verdicts and reasons.

They live in :mod:`planta.words`, shared with the CLI (``planta train``'s summary and gate
verdict say the same sentences as the model page); this module keeps the UI's import path.
"""

from planta.words import SHOWN, gate_lines, metric_sentences, objective_words, reason_words

__all__ = ["SHOWN", "gate_lines", "metric_sentences", "objective_words", "reason_words"]
