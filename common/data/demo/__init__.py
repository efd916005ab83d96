"""Synthetic demo datasets in the real on-disk formats, generated in seconds.

Every app can run its demo on a fresh clone with no download: this package
draws small, deterministic (seeded) datasets with NumPy and OpenCV and writes
them in the same layouts as the real data, so the readers in `common/data`
serve both. Each dataset folder holds a `README.txt` saying that it is
SYNTHETIC demo data: numbers obtained on it say nothing about real data.

Datasets (`demo_dir(name)`; the path to hand a reader is `demo_root(name)`;
`data_root(data_dir, name)` is `data_dir`, or that path when `data_dir` is empty):

- `celeba`: the official CelebA layout (`img_align_celeba/000001.jpg`,
  `list_attr_celeba.txt`, `list_eval_partition.txt`,
  `list_landmarks_align_celeba.txt`) with 89x109 cartoon faces whose
  attributes are drawn (Smiling = curved mouth, Male = short hair and
  facial hair, not Young = wrinkles, Eyeglasses, hair colour, ...).
  Landmarks are the drawn eye centres, nose tip and mouth corners, in the
  pixels of these 89x109 images (the official file uses 178x218).
  `Attractive` depends on a visible feature whose meaning depends on a
  covariate, and on covariates::

      logit = 3 * e * (1 - 2 * Male) + 0.8 * Young - 0.8 * Male
              + 0.8 * Smiling + 0.8 * High_Cheekbones - 0.8
      Attractive ~ Bernoulli(sigmoid(logit))

  with the attributes as 0/1 and `e` uniform in [-1, 1] drawn twice: as the
  eye size (eye radius times 1 + 0.6 e) and as the colour of the clothes
  (blue at e = -1 to red at e = +1): big eyes and red clothes raise
  Attractive for women and lower it for men. (The eyes alone, 1-3 px at
  the demo's 48 px, were too small for the small demo net to learn in six
  epochs: it stayed level with the covariates-only floor.) Sampling the label adds label noise. On 20,000
  sampled faces a logistic regression on the true values reaches about
  0.55 from e alone, 0.61 from the four covariates alone, 0.64 from e and
  the covariates added linearly (what late fusion's head can express) and
  0.79 with the e x Male interaction (the best any model can do), so
  fusing Male into a convolution's kernel (HybridConv2D) is the right
  inductive bias. (Until generator revision celeba 2 the eye-size effect
  did not depend on Male and the eyes were drawn at 1 + 0.3 e, as
  the other face datasets still are; those are unchanged. Until revision
  celeba 3 the clothes' colour was random.)
- `orientation` and `light`: `train/val/test/<class>/*.jpg` of the same
  faces; classes `left, center, right` (the nose and eyes shift towards the
  image's left or right) and `left_light, center_light, right_light` (a
  brightness gradient, brighter on the image's left or right).
- `mnist`: the four gzipped IDX files (magic 2051/2049, big-endian dims),
  28x28 digits made from scikit-learn's bundled 8x8 digits (no download),
  upsampled to 20x20, centred in 28x28 and randomly shifted and rotated a
  little. Train and test digits come from disjoint source digits.
- `voc`: `VOC2012/{JPEGImages,Annotations,ImageSets/Main}` with 160x120
  images holding 1-3 drawn glyphs of the 20 VOC classes (each class its own
  shape and colours), VOC XML with 1-based pixel boxes, `train.txt`,
  `val.txt`, `trainval.txt` and `<class>_<split>.txt`. Eight classes are
  frequent, the other twelve rare.
- `domains`: PACS-like `<modality>/<class>/*.jpg`, modalities `photo`
  (shaded, textured, noisy), `cartoon` (flat colours, thick outlines) and
  `sketch` (thin jittered black strokes on white), classes house, tree,
  sun, car, boat, 64x64.

A dataset is generated only when missing or when `GENERATOR_VERSION`,
the seed or the scale changed: a `.complete` stamp is written last, so an
interrupted generation is redone. `scale="tiny"` writes a handful of images
per class, for tests that need real-format data in well under a second.

Modules: `primitives` (drawing and writing helpers, image counts per scale),
`faces` (celeba, orientation, light), `mnist`, `glyphs` (one drawn shape per
VOC class), `voc`, `domains`, and `store` (where the datasets live: generated
on demand, stamped, locked; `data_root`, every app's `--data-dir` fallback).

Command line: `python -m hybridvision.common.data.demo [--out DIR] [names...]`.
"""

from hybridvision.common.data.demo.domains import DOMAIN_CLASSES, DOMAIN_MODALITIES
from hybridvision.common.data.demo.primitives import SCALES
from hybridvision.common.data.demo.store import (
    ENV_VAR,
    GENERATOR_VERSION,
    NAMES,
    README,
    STAMP,
    data_root,
    default_base_dir,
    demo_dir,
    demo_root,
    generate,
    generate_all,
    is_complete,
    main,
)
from hybridvision.common.data.demo.voc import VOC_FREQUENT

__all__ = [
    "DOMAIN_CLASSES",
    "DOMAIN_MODALITIES",
    "ENV_VAR",
    "GENERATOR_VERSION",
    "NAMES",
    "README",
    "SCALES",
    "STAMP",
    "VOC_FREQUENT",
    "data_root",
    "default_base_dir",
    "demo_dir",
    "demo_root",
    "generate",
    "generate_all",
    "is_complete",
    "main",
]
