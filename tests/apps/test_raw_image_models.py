"""Every app's model takes raw 0..255 images: its first layers do the backbone's preprocessing.

For each app, a tiny model is trained one step through the app's own
pipeline, then

- the model saved and reloaded gives the same outputs as before saving, and
- the reloaded model applied to the raw images (the files decoded and
  resized to 8-bit pixels, nothing else, as `hybridvision.common.predict` does) gives the
  same predictions as the training-time evaluation path (the app's tf.data
  pipeline fed to the model in memory).

So an exported model needs no preprocessing the user must know about.
"""

import keras
import numpy as np
import pytest

from hybridvision.common.data.demo import generate
from hybridvision.common.data.images import decode_image

SIZE = 16


def _raw_images(paths, size=SIZE):
    """The files as a user has them: decoded, resized, 8-bit; no normalisation."""
    images = [np.clip(np.round(decode_image(str(p), (size, size)).numpy()), 0, 255).astype("uint8") for p in paths]
    return np.stack(images)


def _first_layer(model):
    """The first layer that sees the input, looking into nested models."""
    layer = next(layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer))
    return _first_layer(layer) if isinstance(layer, keras.Model) else layer


def _fit_one_step(model, dataset):
    model.fit(dataset.take(1), epochs=1, verbose=0, shuffle=False)


def _attractiveness(tmp_path):
    # The image-only baseline (the covariates' coding is checked through save and reload in
    # tests/common/test_covariate_coding.py and tests/apps/attractiveness/test_table.py).
    from hybridvision.apps.attractiveness.config import AttractivenessConfig
    from hybridvision.apps.attractiveness.data import make_datasets
    from hybridvision.apps.attractiveness.models import build_coded_model, compile_model
    from hybridvision.common.data.image_table import from_celeba

    root = generate("celeba", tmp_path / "celeba", scale="tiny")
    cfg = AttractivenessConfig(backbone="small", image_size=SIZE, batch_size=4, model="baseline", quiet=True)
    tables, _, _ = from_celeba(root, "Attractive", [])
    data = make_datasets(cfg, tables, None, 2, cfg.batch_size)
    model = compile_model(build_coded_model(cfg, None), cfg)
    _fit_one_step(model, data["train"])
    return model, data["test"], [_raw_images(tables["test"]["path"])]


def _patch_training(tmp_path):
    from hybridvision.apps.patch_training.config import PatchTrainingConfig
    from hybridvision.apps.patch_training.models import build_models, compile_models
    from hybridvision.apps.patch_training.train import load_data
    from hybridvision.common.data.voc import full_dataset

    root = generate("voc", tmp_path / "voc", scale="tiny") / "VOC2012"
    cfg = PatchTrainingConfig(data_dir=str(root), backbone="efficientnet_lite0", weights="none", image_size=32,
                              batch_size=4, epochs=1, switch_epoch=0, quiet=True)
    splits, _ = load_data(cfg)
    (train_images, _), (val_images, _) = splits["train"], splits["val"]
    full_model, patch_model = build_models(cfg.backbone, cfg.image_size, cfg.weights, cfg.patch_pooling,
                                           cfg.patch_hidden, cfg.dropout)
    compile_models(full_model, patch_model, [1.0] * 20, cfg.learning_rate, cfg.optimizer, cfg.momentum)
    _fit_one_step(full_model, full_dataset(train_images, cfg.image_size, cfg.batch_size, True, cfg.seed))
    val = full_dataset(val_images, cfg.image_size, cfg.batch_size)
    return full_model, val, [_raw_images(val_images["path"], cfg.image_size)]


def _orientation_light(tmp_path):
    from hybridvision.apps.orientation_light.config import OrientationLightConfig
    from hybridvision.apps.orientation_light.data import load_tables, make_datasets
    from hybridvision.apps.orientation_light.models import build_model, compile_model

    root = generate("orientation", tmp_path / "faces", scale="tiny")
    cfg = OrientationLightConfig(data_dir=str(root), model="efficientnet_lite0", weights="none", image_size=32,
                                 batch_size=4, cache=False, quiet=True)
    tables, class_names, _ = load_tables(cfg)
    data = make_datasets(cfg, tables, class_names, cfg.batch_size)
    model = compile_model(build_model(cfg, len(class_names)), cfg)
    _fit_one_step(model, data["train"])
    return model, data["val"], [_raw_images(tables["val"]["path"], cfg.image_size)]


def _cross_modal(tmp_path):
    from hybridvision.apps.cross_modal.config import CrossModalConfig
    from hybridvision.apps.cross_modal.data import make_images
    from hybridvision.apps.cross_modal.models import build_model, compile_model
    from hybridvision.common.data.domains import read_domains
    from hybridvision.common.features import compute_features

    root = generate("domains", tmp_path / "domains", scale="tiny")
    table = read_domains(root)
    modalities, classes = table.attrs["modalities"], table.attrs["class_names"]
    cfg = CrossModalConfig(model="frozen", backbone="efficientnet_lite0", weights="none", image_size=32,
                           batch_size=4, cache=False, quiet=True)
    model, extractor, head = build_model(cfg, len(classes), modalities)
    compile_model(model, cfg, 1e-2, len(classes))
    _fit_one_step(model, make_images(cfg, table, cfg.batch_size, True, modalities))
    rows = table.iloc[:6]
    # The cached-features path (frozen phase) sees the same raw images: head(features) = the model.
    features = compute_features(extractor, rows["path"], (cfg.image_size, cfg.image_size))
    np.testing.assert_allclose(head.predict(features, verbose=0),
                               model.predict(_raw_images(rows["path"], cfg.image_size), verbose=0), atol=1e-5)
    return model, make_images(cfg, rows, cfg.batch_size, False, modalities), [_raw_images(rows["path"], cfg.image_size)]


APPS = {
    "attractiveness": _attractiveness,
    "patch_training": _patch_training,
    "orientation_light": _orientation_light,
    "cross_modal": _cross_modal,
}


@pytest.mark.parametrize("app", list(APPS))
def test_saved_model_on_raw_images_equals_the_training_evaluation(app, tmp_path):
    import hybridvision

    keras.utils.set_random_seed(0)
    model, eval_dataset, raw_inputs = APPS[app](tmp_path)
    assert _first_layer(model).name.endswith("preprocess")  # the first layer after the input normalises
    expected = model.predict(eval_dataset, verbose=0)
    assert raw_inputs[0].dtype == np.uint8 and raw_inputs[0].max() > 1  # raw pixels, not normalised
    path = tmp_path / f"{app}.keras"
    model.save(path)
    reloaded = hybridvision.load_model(path)
    float_raw = [x.astype("float32") for x in raw_inputs]
    float_raw = float_raw if len(float_raw) > 1 else float_raw[0]
    np.testing.assert_allclose(reloaded.predict(float_raw, verbose=0), model.predict(float_raw, verbose=0),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reloaded.predict(float_raw, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert np.std(expected) > 0  # input-dependent predictions, not a constant
