"""How good are the units and the embeddings, where some labels exist.

    scores.py   units against annotations (NMI, V-measure, purity, coverage) and the
                silence detector's balanced accuracy, per window and per 10 ms frame
    abx.py      ABX discriminability within and across speaker (DTW on unit frames)
    pairs.py    Siamese pairs: DTW distances of duplicate and non-duplicate utterances
                and how well they separate (KL, Bhattacharyya, ROC-AUC, EER)
"""

from discovery.evaluate.pairs import (
    Pairs,
    SiameseEvaluation,
    bhattacharyya,
    check_pair_settings,
    histogram_kl,
    labels_from_names,
    make_pairs,
    pair_distances,
    separation,
    siamese_evaluation,
    values_from_names,
)
from discovery.evaluate.abx import abx_error, abx_scores, make_triplets
from discovery.evaluate.scores import (
    NO_UNIT,
    SCORE_STEP_S,
    frame_units,
    interval_units,
    purity,
    silence_scores,
    unit_scores,
    window_silence_truth,
)
