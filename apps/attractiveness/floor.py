"""The covariates-only floor: what the covariates alone predict, no image at all.

The covariates are given at test time too, so a model that uses them must be
judged against this floor, not only against image-only results: a
(multinomial) logistic regression on the covariates coded exactly as the
model codes them (`hybridvision.common.covariate_coding`: the same layers,
fitted on the same train rows), scored on the same val/test rows with the
same scores (`hybridvision.common.metrics.label_scores`).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from hybridvision.common.metrics import label_scores


def covariate_floor(tables: dict, coding, num_classes: int = 2) -> dict:
    """Logistic regression of the label on the coded covariates, fitted on `tables["train"]`.

    Args:
        tables: `{"train": table, "val": table, "test": table}` with a `label` column of class ids
            (`hybridvision.common.data.image_table`).
        coding: the `CovariateCoding` fitted on the train rows; None: the floor is the majority class
            of the train rows (its ROC AUC is 0.5).
        num_classes: the number of classes.

    Returns:
        `{"val": {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}, "test": {...}}` for each split present.
    """
    y = tables["train"]["label"].to_numpy().astype(int)
    if coding is not None:
        model = LogisticRegression(max_iter=2000).fit(coding.coded(tables["train"]), y)

        def proba(table):
            p = np.zeros((len(table), num_classes))
            p[:, model.classes_] = model.predict_proba(coding.coded(table))
            return p
    else:
        prior = np.bincount(y, minlength=num_classes) / len(y)

        def proba(table):
            return np.tile(prior, (len(table), 1))

    return {
        split: label_scores(tables[split]["label"].to_numpy(), proba(tables[split]))
        for split in ("val", "test")
        if split in tables and len(tables[split])
    }
