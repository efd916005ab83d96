"""Train and compare classifiers across modalities (photos, clip art, sketches).

    hybridvision cross_modal train --data-dir ../shared/data/pacs_small --protocol from_source --source photo
    hybridvision cross_modal train --data-dir data/pacs --model finetune --protocol leave_one_out --folds 5
    hybridvision cross_modal train --backbone small --weights none --model scratch --image-size 64   # CPU
    hybridvision cross_modal train --data-dir data/pacs --protocol domainbed --seeds 0,1,2   # as DomainBed (domainbed.py)

Data: `<data-dir>/<modality>/<class>/*.jpg`. Besides the shared run directory
(see `hybridvision.common.run`) it writes `modality_table.csv|md` (rows: the
modalities a model was trained on, columns: the modality it was tested on),
`confusion_<row>_<modality>.png`, and in metrics.json
`test.per_modality.<modality>.accuracy` (and top-5 with more than 5 classes).
A model trained on some modalities is tested on their test split and on every
image of the other modalities (none of which it saw). Retrieval mAP per
(query modality, gallery modality), from the head's Dense embedding and from
the backbone's pooled features, goes into metrics.json under `retrieval` and
into `retrieval_table.md`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hybridvision.apps.cross_modal.config import CrossModalConfig, train_parser
from hybridvision.apps.cross_modal.data import (
    check_unseen,
    experiments,
    labels_of,
    load_table,
    make_images,
    partitions,
    test_rows,
)
from hybridvision.apps.cross_modal.models import build_model, compile_model, prepare_finetuning
from hybridvision.apps.cross_modal.report import (
    evaluate_per_modality,
    leave_one_out_markdown,
    retrieval_markdown,
    retrieval_tables,
    summarize,
    write_table,
)
from hybridvision.common.config import parse_config
from hybridvision.common.distribute import Distribution
from hybridvision.common.features import cached_features
from hybridvision.common.run import Run, refuse_unexported, setup_logging

APP = "cross_modal"
log = logging.getLogger("hybridvision")


def fit_one(cfg, run, dist, tag, part, train_modalities, tested, class_names, modalities, batch_size, learning_rate):
    """Train one model on `train_modalities` of a partition; returns `(model, extractor, head)`, best weights.

    Refused (`check_unseen`) when a row of `tested`, the images it will be tested on, or of a
    domain held out of training would be trained on or choose the checkpoint.
    """
    train, val = ({s: part[s][part[s]["modality"].isin(train_modalities)] for s in ("train", "val")}).values()
    check_unseen(train, val, tested, train_modalities)
    num_classes = len(class_names)
    with dist.scope():
        model, extractor, head = build_model(cfg, num_classes, modalities)
        compile_model(model, cfg, learning_rate, num_classes)

    def images():
        return (make_images(cfg, train, batch_size, True, modalities),
                make_images(cfg, val, batch_size, False, modalities))

    if cfg.model in ("frozen", "finetune") and cfg.cache_features:
        size = (cfg.image_size, cfg.image_size)
        cache = Path(run.dir).parent / "feature_cache"
        feats = [cached_features(extractor, t["path"], size, cache, cfg.backbone, cfg.weights, batch_size)
                 for t in (train, val)]
        with dist.scope():
            compile_model(head, cfg, learning_rate, num_classes)
        run.fit(head, (feats[0], labels_of(train)), (feats[1], labels_of(val)), monitor=cfg.monitor,
                phase=tag, batch_size=batch_size, shuffle=True)
        run.restore_best(head, tag)
    else:
        run.fit(model, *images(), monitor=cfg.monitor, phase=tag)
        run.restore_best(model, tag)
    if cfg.model == "finetune":
        with dist.scope():
            n_layers = prepare_finetuning(extractor, cfg)
            compile_model(model, cfg, learning_rate * cfg.finetune_learning_rate_factor, num_classes)
        log.info("%s: fine-tuning the top %d layers of %s", tag, n_layers, cfg.backbone)
        run.fit(model, *images(), epochs=cfg.finetune_epochs, monitor=cfg.monitor, phase=f"{tag}_finetune")
        run.restore_best(model, f"{tag}_finetune")
    return model, extractor, head


def train(cfg: CrossModalConfig, export: bool = True) -> dict:
    """One run of the protocol (per fold with `--folds`; of one domainbed cell); returns metrics.

    `export=False` keeps the model in the run directory only (`Run`'s `export`).
    """
    table = load_table(cfg)
    class_names, modalities = table.attrs["class_names"], table.attrs["modalities"]
    dist = Distribution.from_config(cfg)
    batch_size, learning_rate = dist.global_batch_size(cfg.batch_size), dist.learning_rate(cfg.learning_rate)
    run = Run(APP, cfg, export=export)
    run.note("class_names", class_names)
    run.note("modalities", modalities)
    if table.attrs["missing_classes"]:
        run.note("missing_classes", table.attrs["missing_classes"])
    if cfg.model in ("frozen", "finetune") and cfg.cache_features and cfg.augment:
        run.note("augmentation", "frozen phase trained on cached features: no augmentation there"
                 + (" (used when fine-tuning)" if cfg.model == "finetune" else ""))
    if str(cfg.weights).lower() == "none" and cfg.model in ("frozen", "finetune"):
        run.note("weights", "random frozen backbone (--weights none): not transfer learning")
    parts = partitions(cfg, table)
    rows, retrieval, model = {}, {}, None
    for k, part in enumerate(parts):
        for name, train_modalities in experiments(cfg, modalities):
            tag = name if len(parts) == 1 else f"{name}_fold{k}"
            tested = test_rows(table, part["test"], train_modalities)
            model, extractor, head = fit_one(cfg, run, dist, tag, part, train_modalities, tested, class_names,
                                             modalities, batch_size, learning_rate)
            rows.setdefault(name, []).append(evaluate_per_modality(
                model, cfg, tested, class_names, modalities, batch_size,
                out_dir=run.dir if k == 0 else None, tag=name))
            # per_modality has no single embedding; a domainbed cell reports accuracy only
            if k == 0 and extractor is not None and cfg.protocol != "domainbed":
                retrieval[name] = retrieval_tables(extractor, head, cfg, tested, modalities, batch_size)
    test = summarize(rows, cfg.protocol, modalities)
    split = (f"{cfg.folds}-fold cross-validation" if cfg.folds else "training-domain validation (80/20 of each "
             "training domain)" if cfg.protocol == "domainbed" else f"split {cfg.split}")
    markdown = write_table(rows, test, modalities, run.dir,
                           f"Test accuracy, model {cfg.model} ({cfg.backbone}, weights {cfg.weights}), "
                           f"protocol {cfg.protocol}, {split}")
    extra = {"test": test}
    if retrieval:
        extra["retrieval"] = retrieval
        Path(run.dir, "retrieval_table.md").write_text(retrieval_markdown(
            retrieval, f"Retrieval mAP (cosine), model {cfg.model} ({cfg.backbone}), protocol {cfg.protocol}"
            + (", first fold" if cfg.folds else "")) + "\n")
    if cfg.protocol == "leave_one_out":
        pacs = leave_one_out_markdown(test, retrieval, (
            f"Leave one domain out: trained on the other {len(modalities) - 1} domains, tested on every image of the "
            f"held-out one; model {cfg.model} ({cfg.backbone}), {split}"
            + (" (accuracy: mean over folds; retrieval: first fold)" if cfg.folds else "")))
        Path(run.dir, "leave_one_out_table.md").write_text(pacs + "\n")
        markdown += "\n\n" + pacs
    run.note("exported_model_is", f"the model of row '{list(rows)[-1]}'" + (" (last fold)" if cfg.folds else ""))
    # The last experiment's model, its best weights restored above (a frozen model's checkpoint holds only its head).
    card = {"task": f"one of {len(class_names)} classes (softmax), images of any modality", "class_names": class_names,
            "modalities": modalities}
    if cfg.model == "per_modality":  # its second input says which modality each image is
        card.update(covariates=list(modalities), covariate_coding="one-hot: 1 for the image's modality, 0 for the others")
    # TensorBoard's Grad-CAM samples: the last experiment's test images.
    samples = make_images(cfg, tested, batch_size, False, modalities)
    _, metrics = run.finish(model, {}, final="last", metrics=extra, card=card, samples=samples)
    metrics["markdown_table"] = markdown
    return metrics


def main(argv=None) -> dict:
    cfg = parse_config(CrossModalConfig, argv, parser=train_parser())
    setup_logging(cfg.quiet)
    if cfg.protocol == "domainbed":
        from hybridvision.apps.cross_modal.domainbed import run_domainbed

        return run_domainbed(cfg, train)
    metrics = train(cfg)
    print(metrics.pop("markdown_table"))
    per = ", ".join(f"{m} {v['accuracy']:.3f}" for m, v in metrics["test"]["per_modality"].items())
    print(f"cross_modal {cfg.model} {cfg.protocol}: test accuracy {metrics['test']['accuracy']:.4f} ({per})")
    return refuse_unexported(metrics)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
