"""The covariates-only floor: what the covariates alone predict, no image at all.

The covariates are ground-truth attributes given at test time too, so a
model that uses them must be judged against this floor (a logistic
regression on the same 0/1 covariates, fitted on the same train rows and
scored on the same val/test rows), not against image-only results.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def _scores(y_true, y_pred) -> dict:
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def covariate_floor(tables: dict, target: str, covariates: list[str]) -> dict:
    """Logistic regression of `target` on `covariates`, fitted on `tables["train"]`.

    Args:
        tables: `{"train": table, "val": table, "test": table}` (from
            `hybridvision.common.data.celeba.split_partitions`).
        target: the 0/1 column to predict.
        covariates: 0/1 columns used as features; with none, the floor is the
            majority class of the train rows.

    Returns:
        `{"val": {"accuracy", "f1_macro"}, "test": {...}}` for each split present.
    """
    train = tables["train"]
    y = train[target].to_numpy().astype(int)
    if covariates:
        model = LogisticRegression().fit(train[list(covariates)].to_numpy(dtype=float), y)

        def predict(table):
            return model.predict(table[list(covariates)].to_numpy(dtype=float))
    else:
        majority = int(np.mean(y) >= 0.5)

        def predict(table):
            return np.full(len(table), majority)

    return {
        split: _scores(tables[split][target].to_numpy().astype(int), predict(tables[split]))
        for split in ("val", "test")
        if split in tables and len(tables[split])
    }
