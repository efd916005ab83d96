# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # HybridConv2D: a convolution whose kernel depends on each sample's covariates
#
# `HybridConv2D` (the ShortFuse "hybrid filter") convolves sample `i`, which
# comes with structured covariates `s_i = (s_i1, ..., s_id)` (say Male, Young
# as 0/1), with its own kernel
#
# $$k_i = W_0 + \sum_{l=1}^{d} s_{il} W_l ,$$
#
# then adds the shared bias. `W_0` has the shape of an ordinary `Conv2D`
# kernel; the `W_l` are extra trainable kernels of the same shape. This
# notebook shows
#
# 1. that the per-sample kernels really differ from sample to sample,
# 2. that the vectorised layer equals a per-sample loop (the exactness check),
# 3. that a layer made from a trained `Conv2D` starts exactly where it was,
# 4. how fast it is against a plain `Conv2D` and the per-sample loop.
#
# Run it top to bottom. `QUICK = True` uses small shapes (a few seconds):
# the checks of sections 1-3 hold at any size, but its timings in section 4
# say little; set it to `False` for the benchmark's shapes (batch 32,
# 64x64x64, a GPU helps). This notebook writes no files.

# %% tags=["parameters"]
REPO_URL = "https://github.com/OWNER/hybridvision.git"  # the suite's git URL (Colab clones it)
QUICK = True  # real value: False (benchmark-sized shapes)
DATA_DIR = None  # unused here: this notebook draws random tensors

# %% [markdown]
# ## Setup
# In Colab this clones `REPO_URL` and installs the suite; in a local checkout
# (or where the suite is installed already) it only puts the checkout on the path.

# %%
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
IN_COLAB = importlib.util.find_spec("google.colab") is not None


def find_checkout():
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "setup.py").is_file() and (folder / "common" / "layers").is_dir():
            return folder
    return None


ROOT = find_checkout()
if ROOT is None and IN_COLAB:
    if "OWNER" in REPO_URL:
        raise ValueError("set REPO_URL in the first code cell to the git URL of the hybridvision repository")
    ROOT = Path("/content/hybridvision")
    if not ROOT.exists():
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
if ROOT is not None and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
try:
    import hybridvision.common.layers  # noqa: F401
except ImportError as error:
    raise ImportError(
        "hybridvision is not importable: open this notebook from a checkout's notebooks/ folder, "
        "`pip install -e .` the checkout, or run it in Colab with REPO_URL set"
    ) from error

# %% [markdown]
# ## Backend and GPU
# The layer is written with `keras.ops`, so it runs on TensorFlow and JAX.

# %%
import keras
import numpy as np
import tensorflow as tf

from hybridvision.common.notebook import report_backend

gpus = report_backend()

# %% [markdown]
# ## 1. One kernel per sample
# A layer with `d = 2` covariates and random `W_l` (a fresh layer starts with
# `W_l = 0`; random ones make the differences visible). Four samples with
# covariates (0, 0), (1, 0), (0, 1), (1, 1) get four different kernels.

# %%
from hybridvision.common.layers import HybridConv2D

keras.utils.set_random_seed(0)
size, channels, filters, d = (16, 3, 4, 2) if QUICK else (64, 16, 32, 2)
layer = HybridConv2D(filters, 3, num_covariates=d, padding="same", covariate_initializer="glorot_uniform")
images = np.random.default_rng(0).normal(size=(4, size, size, channels)).astype("float32")
covariates = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype="float32")
outputs = keras.ops.convert_to_numpy(layer([images, covariates]))
print("output shape:", outputs.shape)

w0 = keras.ops.convert_to_numpy(layer.kernel)
wl = keras.ops.convert_to_numpy(layer.covariate_kernels)
per_sample = [w0 + np.tensordot(s, wl, axes=1) for s in covariates]

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
vmax = max(np.abs(k[..., 0, 0]).max() for k in per_sample)
for ax, kernel, s in zip(axes, per_sample, covariates):
    ax.imshow(kernel[..., 0, 0], cmap="coolwarm", vmin=-vmax, vmax=vmax)
    ax.set_title(f"s = {tuple(int(v) for v in s)}")
    ax.axis("off")
fig.suptitle("3x3 kernel (input channel 0 -> filter 0) of each sample")
plt.show()

# %% [markdown]
# ## 2. Exactness: the vectorised layer equals a per-sample loop
# The layer never loops over the batch in Python. How it applies the
# per-sample kernels depends on where it runs (`implementation="auto"`): on a
# GPU or TPU it stacks them into one grouped convolution (the batch folded
# into the channels); on a CPU it maps one ordinary convolution per sample
# inside the graph (`keras.ops.map`) for large convolutions, and for small ones
# uses im2col with one batched matrix multiply (under XLA) or the grouped
# convolution (where TensorFlow can differentiate it on that CPU). Each costs
# the multiply-adds of one plain convolution; `implementation=` picks one by
# name, with the same result. The reference below does what the definition
# says, one sample at a time with `tf.nn.conv2d`.

# %%
reference = np.concatenate(
    [tf.nn.conv2d(images[i : i + 1], kernel, strides=1, padding="SAME").numpy() for i, kernel in enumerate(per_sample)]
)
reference += keras.ops.convert_to_numpy(layer.bias)
gap = float(np.abs(outputs - reference).max())
print(f"max |layer - per-sample loop| = {gap:.2e}")
assert gap < 1e-4, "HybridConv2D disagrees with the per-sample reference"

# %% [markdown]
# ## 3. Hybridising a trained convolution
# `HybridConv2D.from_conv2d(conv, num_covariates)` copies the kernel and bias
# into `W_0` and the bias and sets every `W_l = 0`, so a pretrained network
# with a hybridised layer gives exactly the plain network's outputs before
# any training on the covariates.

# %%
conv = keras.layers.Conv2D(filters, 3, padding="same")
plain = keras.ops.convert_to_numpy(conv(images))
hybrid = HybridConv2D.from_conv2d(conv, num_covariates=d)
same = keras.ops.convert_to_numpy(hybrid([images, covariates]))
print(f"max |hybrid - conv| right after from_conv2d = {np.abs(same - plain).max():.2e}")
assert np.allclose(same, plain, atol=1e-5)

# %% [markdown]
# ## 4. Speed
# One train step (forward and backward) of the hybrid layer, a plain `Conv2D`
# of the same shape and the per-sample loop, timed side by side by
# `benchmarks/hybrid_conv.py` (`python -m benchmarks.hybrid_conv` runs the
# full table). The hybrid layer does the multiply-adds of the plain
# convolution plus building the kernels; the loop runs one convolution per
# sample. The stored benchmark run (`docs/results/bench_hybrid_conv/`, batch
# 32, 64x64x64 -> 64, on a 2-core CPU) measured `hybrid / conv` at 0.99-1.05
# and the loop at 2.6-2.7 times the hybrid layer; with `QUICK = True` the
# shapes are too small for the ratios to mean much.

# %%
from benchmarks.hybrid_conv import measure

if QUICK:
    shape = {"batch": 4, "size": 16, "channels": 8, "filters": 8, "kernel_size": 3, "warmup": 1, "repeats": 3}
else:
    shape = {"batch": 32, "size": 64, "channels": 64, "filters": 64, "kernel_size": 3, "warmup": 2, "repeats": 7}
medians, _ = measure(d=3, **shape)
for name, seconds in medians.items():
    print(f"{name:>7}: {1e3 * seconds:8.2f} ms per train step")
print(f"hybrid / conv = {medians['hybrid'] / medians['conv']:.2f}, loop / hybrid = {medians['loop'] / medians['hybrid']:.2f}")

fig, ax = plt.subplots(figsize=(4.5, 3))
ax.bar(list(medians), [1e3 * v for v in medians.values()], color=["tab:blue", "tab:gray", "tab:red"])
ax.set_ylabel("ms per train step")
ax.set_title(f"batch {shape['batch']}, {shape['size']}x{shape['size']}x{shape['channels']}, d = 3")
plt.show()

# %% [markdown]
# ## Where next
# The attractiveness notebook puts `HybridConv2D` into a network and compares
# it with a plain baseline and late fusion on (demo or real) CelebA.
