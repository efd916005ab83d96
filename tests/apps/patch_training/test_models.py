"""The two heads share one backbone; each head's training moves only itself and the backbone."""

import numpy as np
import pytest

from hybridvision.apps.patch_training.models import backbone_of, build_models, compile_models, head_weights


def _models(pooling="adaptive"):
    full, patch = build_models("small", 32, "none", pooling, patch_hidden=16, dropout=0.0)
    compile_models(full, patch, np.full(20, 3.0), learning_rate=0.05)
    return full, patch


def _snapshot(variables):
    return [np.array(v) for v in variables]


def _changed(variables, before):
    return [not np.allclose(np.array(v), old) for v, old in zip(variables, before)]


def test_heads_share_the_backbone():
    full, patch = _models()
    assert backbone_of(full) is backbone_of(patch)
    full_head, patch_head = {id(v) for v in head_weights(full)}, {id(v) for v in head_weights(patch)}
    assert full_head and patch_head and not full_head & patch_head
    assert len(head_weights(patch)) == 6  # three dense layers
    assert len(head_weights(full)) == 2


@pytest.mark.parametrize("pooling", ["adaptive", "spp"])
def test_patch_step_moves_backbone_and_patch_head_only(pooling):
    full, patch = _models(pooling)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    out = np.asarray(patch(x))
    assert out.shape == (2, 20)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    backbone = [v for v in backbone_of(patch).trainable_variables]
    before = _snapshot(backbone + head_weights(patch) + head_weights(full))
    patch.train_on_batch(x, np.array([3, 7]))
    changed = _changed(backbone + head_weights(patch) + head_weights(full), before)
    n_b, n_p = len(backbone), len(head_weights(patch))
    assert all(changed[: n_b + n_p]), "every backbone and patch-head weight must move"
    assert not any(changed[n_b + n_p :]), "the multi-label head must not move on a patch step"


def test_full_step_moves_backbone_and_label_head_only():
    full, patch = _models()
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y = np.zeros((2, 20), "float32")
    y[0, 3] = y[1, [5, 14]] = 1
    probs = np.asarray(full(x))
    assert probs.shape == (2, 20) and ((probs > 0) & (probs < 1)).all()
    backbone = list(backbone_of(full).trainable_variables)
    before = _snapshot(backbone + head_weights(full) + head_weights(patch))
    full.train_on_batch(x, y)
    changed = _changed(backbone + head_weights(full) + head_weights(patch), before)
    n = len(backbone) + len(head_weights(full))
    assert all(changed[:n]) and not any(changed[n:])


def test_patch_model_takes_its_own_learning_rate():
    full, patch = _models()
    assert float(patch.optimizer.learning_rate) == pytest.approx(0.05)  # default: the full model's
    compile_models(full, patch, np.full(20, 3.0), learning_rate=0.05, patch_learning_rate=0.005)
    assert float(full.optimizer.learning_rate) == pytest.approx(0.05)
    assert float(patch.optimizer.learning_rate) == pytest.approx(0.005)


def test_pooling_feature_sizes_and_bad_flag():
    # small backbone: 32 px -> 2x2x128; adaptive 4x4 -> 16 cells, spp 1+4+16 = 21 cells.
    for pooling, cells in (("adaptive", 16), ("spp", 21)):
        _, patch = build_models("small", 32, "none", pooling, patch_hidden=16)
        assert patch.get_layer("patch_flatten").output.shape[-1] == cells * 128
    with pytest.raises(ValueError, match="--patch-pooling"):
        build_models("small", 32, "none", "median")
