"""Distribution: strategies, batch/learning-rate scaling, mixed precision with HybridConv2D."""

import keras
import numpy as np
import pytest

from hybridvision.common.config import TrainConfig
from hybridvision.common.distribute import Distribution
from hybridvision.common.layers import HybridConv2D


@pytest.fixture(autouse=True)
def _restore_policy():
    previous = keras.config.dtype_policy().name
    yield
    keras.config.set_dtype_policy(previous)


def _hybrid_classifier():
    images, covariates = keras.Input((8, 8, 3)), keras.Input((2,))
    x = HybridConv2D(4, 3, 2, padding="same", activation="relu", covariate_initializer="glorot_uniform")(
        [images, covariates]
    )
    x = keras.layers.GlobalAveragePooling2D()(x)
    # Heads keep float32 outputs under mixed precision (house rule for every app).
    outputs = keras.layers.Dense(3, activation="softmax", dtype="float32")(x)
    return keras.Model([images, covariates], outputs)


def _data(n=8):
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n, 8, 8, 3)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")], rng.integers(0, 3, n)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_hybrid_model_trains_with_float32_outputs_and_weights(policy):
    dist = Distribution.from_config(TrainConfig(mixed_precision=policy))
    assert keras.config.dtype_policy().name == policy
    with dist.scope():
        model = _hybrid_classifier()
        model.compile(optimizer=keras.optimizers.Adam(dist.learning_rate(1e-2)), loss="sparse_categorical_crossentropy")
    hybrid = model.layers[2]
    assert isinstance(hybrid, HybridConv2D) and hybrid.compute_dtype == policy.split("_")[1]
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)
    if policy == "mixed_float16":
        # float16 gradients underflow without loss scaling; Keras adds it at compile.
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    x, y = _data()
    before = keras.ops.convert_to_numpy(hybrid.covariate_kernels).copy()
    history = model.fit(x, y, batch_size=dist.global_batch_size(4), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    probs = model(x)
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probs).sum(axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(before, keras.ops.convert_to_numpy(hybrid.covariate_kernels))


def test_default_strategy_and_scaling():
    dist = Distribution.from_config(TrainConfig(scale_learning_rate=True))
    assert keras.config.dtype_policy().name == "float32"
    assert dist.num_replicas == 1 and dist.global_batch_size(16) == 16 and dist.learning_rate(0.1) == 0.1


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="MirroredStrategy is TensorFlow-only")
def test_mirrored_on_local_devices_scales_batch_and_learning_rate():
    import tensorflow as tf

    dist = Distribution("mirrored", scale_learning_rate=True)
    replicas = len(tf.config.list_logical_devices("GPU")) or 1
    assert dist.num_replicas == replicas
    assert dist.global_batch_size(8) == 8 * replicas and dist.learning_rate(0.1) == pytest.approx(0.1 * replicas)
    with dist.scope():
        model = _hybrid_classifier()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = _data()
    assert np.isfinite(model.fit(x, y, batch_size=dist.global_batch_size(4), epochs=1, verbose=0).history["loss"][0])


def test_wrong_backend_or_name_errors_clearly():
    other = "data_parallel" if keras.config.backend() == "tensorflow" else "mirrored"
    with pytest.raises(ValueError, match="needs KERAS_BACKEND"):
        Distribution(other)
    with pytest.raises(ValueError, match="--strategy 'ring' is not valid"):
        Distribution("ring")


# ---- multi-process settings (no processes started: the parsing and its errors) ----
from hybridvision.common.distribute import MultiHost, multihost_settings  # noqa: E402


def test_multihost_settings_from_flags_keras_env_and_slurm():
    assert multihost_settings(environ={}) is None and multihost_settings(num_processes=1, environ={}) is None
    assert multihost_settings("h0:1234", 2, 1, environ={}) == MultiHost("h0:1234", 2, 1, "flags")
    keras_env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
                 "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"}
    assert multihost_settings(environ=keras_env) == MultiHost("10.0.0.1:1234", 2, 1, "KERAS_DISTRIBUTION_*")
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_JOB_ID": "4097", "SLURM_STEP_NODELIST": "gpu[07-08,11],cpu1"}
    # SLURM's variables count only with --strategy data_parallel (a tuner under srun runs independent processes).
    assert multihost_settings(environ=slurm) is None
    assert multihost_settings(use_scheduler_env=True, environ=slurm) == MultiHost("gpu07:61001", 4, 3, "SLURM")
    # Flags win over the environment, setting by setting.
    assert multihost_settings("me:9", None, 0, use_scheduler_env=True, environ=slurm) == MultiHost("me:9", 4, 0, "SLURM")
    assert multihost_settings(use_scheduler_env=True, environ={"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None


@pytest.mark.parametrize("kwargs, message", [
    ({"num_processes": 2, "coordinator": "h:1"}, "needs --process-id"),
    ({"num_processes": 2, "process_id": 2, "coordinator": "h:1"}, r"--process-id 2 must be in 0\.\.1"),
    ({"num_processes": 2, "process_id": 0}, "--coordinator None: give process 0's address as HOST:PORT"),
    ({"num_processes": 2, "process_id": 0, "coordinator": "nohost"}, "HOST:PORT"),
    ({"coordinator": "h:1"}, "need --num-processes N > 1"),
])
def test_multihost_settings_errors_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        multihost_settings(environ={}, **kwargs)


def test_multihost_flags_on_every_app_command_line():
    from hybridvision.common.config import build_parser

    text = build_parser(TrainConfig).format_help()
    for flag in ("--coordinator", "--num-processes", "--process-id"):
        assert flag in text


def test_multihost_on_tensorflow_or_with_mirrored_errors_clearly():
    # TensorFlow backend only (tests/jax/test_distribute.py leaves it out).
    with pytest.raises(ValueError, match="needs KERAS_BACKEND=jax"):
        Distribution(coordinator="localhost:1", num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="--strategy mirrored is one host only"):
        Distribution("mirrored", coordinator="localhost:1", num_processes=2, process_id=0)


def test_even_shards_give_every_process_equal_shares_of_every_batch():
    import tensorflow as tf

    from hybridvision.common.distribute import even_shards

    def batches(dataset):
        return [tf.nest.map_structure(lambda t: t.numpy().tolist(), b) for b in dataset]

    numbers = tf.data.Dataset.range(11).batch(4)  # 4, 4, 3: the last one is short
    assert batches(even_shards(numbers, devices=2)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches(even_shards(numbers, devices=2, processes=2, index=0)) == [[0, 1], [4, 5], [8]]
    assert batches(even_shards(numbers, devices=2, processes=2, index=1)) == [[2, 3], [6, 7], [9]]
    # A last batch smaller than the device count is dropped, so no process gets an empty step.
    assert batches(even_shards(tf.data.Dataset.range(9).batch(4), devices=2, processes=2, index=1)) == [[2, 3], [6, 7]]
    # (inputs, labels) tuples and dicts are cut alike.
    pairs = tf.data.Dataset.from_tensor_slices(({"a": tf.range(6)}, tf.range(6) * 10)).batch(3)
    assert batches(even_shards(pairs, devices=2, processes=2, index=1)) == [({"a": [1]}, [10]), ({"a": [4]}, [40])]
