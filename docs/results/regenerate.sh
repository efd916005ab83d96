#!/usr/bin/env bash
# Regenerates the real-data results of docs/results/README.md: each entry runs one command on
# a sample in ../shared/data and stores what it printed and wrote under
# docs/results/<name>/ (command.txt, output.txt, metrics.json and the tables).
#
#   make results                         # every entry (hours on 2 CPU cores)
#   docs/results/regenerate.sh NAME ...  # only these entries
#   docs/results/regenerate.sh --list    # the entries
#
# SHARED (default ../shared/data) is where the samples are. KEEP_RUNS=1 keeps an
# entry's run folder, so a run that was stopped resumes where it was (the apps
# read finished runs back) instead of starting again.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SHARED=${SHARED:-../shared/data}
OUT=docs/results
RUNS=${RUNS:-runs/results}

PACS="--data-dir $SHARED/pacs_small"
CELEBA="--data-dir $SHARED/celeba_sample"
VOC="--data-dir $SHARED/voc_sample"
FACES="$SHARED/faces_orient_light"
HAM="--data-dir $SHARED/ham10000_sample --target malignant --covariates age,sex,localization"

declare -A CMD=(
  # `make demo` / `hybridvision demo`: every app on its embedded synthetic demo data (needs no sample)
  [make_demo]="-m hybridvision.apps demo"
  # cross_modal, pretrained EfficientNet-Lite0 (the defaults), trained on photos only
  [cross_modal_photo_finetune]="-m hybridvision.apps.cross_modal.train $PACS --protocol from_source --source photo"
  [cross_modal_photo_finetune_seed1]="-m hybridvision.apps.cross_modal.train $PACS --protocol from_source --source photo --seed 1"
  [cross_modal_photo_finetune_seed2]="-m hybridvision.apps.cross_modal.train $PACS --protocol from_source --source photo --seed 2"
  [cross_modal_photo_frozen]="-m hybridvision.apps.cross_modal.train $PACS --protocol from_source --source photo --model frozen"
  [cross_modal_photo_linear_probe]="-m hybridvision.apps.cross_modal.linear_probe $PACS --protocol from_source --source photo"
  # the same with the larger EfficientNet-Lite2 (260 px): fine-tuned (two seeds) and its linear probe
  [cross_modal_photo_finetune_lite2]="-m hybridvision.apps.cross_modal.train $PACS --protocol from_source --source photo --backbone efficientnet_lite2"
  [cross_modal_photo_finetune_lite2_seed1]="-m hybridvision.apps.cross_modal.train $PACS --protocol from_source --source photo --backbone efficientnet_lite2 --seed 1"
  [cross_modal_photo_linear_probe_lite2]="-m hybridvision.apps.cross_modal.linear_probe $PACS --protocol from_source --source photo --backbone efficientnet_lite2"
  # the standard PACS protocol: per domain, train on the other three, test on every image of it; and all domains
  # together. Frozen backbone (features computed once, the head trained on them): ~7 min for both at 224 px on the
  # 2-core AVX-512 CPU shared with other jobs (load 6-10); fine-tuned (the two entries after): all ~12 min, leave
  # one out ~21 min for the four (one model ~5-6 min).
  [cross_modal_leave_one_out_frozen]="-m hybridvision.apps.cross_modal.train $PACS --protocol leave_one_out --model frozen"
  [cross_modal_all_frozen]="-m hybridvision.apps.cross_modal.train $PACS --protocol all --model frozen"
  [cross_modal_leave_one_out]="-m hybridvision.apps.cross_modal.train $PACS --protocol leave_one_out"
  [cross_modal_all]="-m hybridvision.apps.cross_modal.train $PACS --protocol all"
  # DomainBed's protocol (--protocol domainbed): per held-out domain and seed, fine-tuned on 80% of each other domain,
  # the checkpoint chosen on their other 20%, tested on every image of the held-out domain; mean ± standard error
  # over 3 seeds (12 cells, each resumed on its own; the command prints its estimated time first). Lite0 at 224 px
  # and Lite2 at 260 px (Lite0: 4-5 min a cell on 2 CPU cores, about an hour; Lite2 about twice that a cell)
  [cross_modal_domainbed_lite0]="-m hybridvision.apps.cross_modal.train $PACS --protocol domainbed --seeds 0,1,2"
  [cross_modal_domainbed_lite2]="-m hybridvision.apps.cross_modal.train $PACS --protocol domainbed --seeds 0,1,2 --backbone efficientnet_lite2"
  # the fine-tuning defaults against one change at a time, chosen on training-domain validation only: the domainbed
  # protocol (seed 0, each domain held out in turn); 28 cells, 3-8 min each
  [cross_modal_defaults_val]="docs/results/cross_modal_defaults_compare.py --data-dir $SHARED/pacs_small"
  # the candidate that came out level with the defaults at seed 0 (12 fine-tuning epochs), both again at seed 1
  [cross_modal_defaults_val_seed1]="docs/results/cross_modal_defaults_compare.py --data-dir $SHARED/pacs_small --seeds 1 --candidates default,finetune_epochs_12"
  # cross_modal from scratch (the comparison from before pretrained weights)
  [cross_modal_photo_scratch]="-m hybridvision.apps.cross_modal.train $PACS --protocol from_source --source photo --model scratch --backbone small --image-size 64 --epochs 20"
  # attractiveness, pretrained EfficientNet-Lite0 fine-tuned (the defaults: 224 px), 3 seeds on one split
  [attractiveness_baseline_male]="-m hybridvision.apps.attractiveness.train $CELEBA --model baseline --covariates Male --epochs 5 --cache --seeds 0,1,2"
  [attractiveness_hybrid_male]="-m hybridvision.apps.attractiveness.train $CELEBA --model hybrid --covariates Male --epochs 5 --cache --seeds 0,1,2"
  # the conditioning study on the default pretrained Lite0 (224 px, fine-tuned whole): the true covariate only,
  # five seeds (25 runs, each ~4-6 min on 2 cores)
  [attractiveness_study_lite0]="-m hybridvision.apps.attractiveness.study $CELEBA --cache --models baseline,late_fusion,hybrid_last,film_last,condconv_last --covariate-sets Male --controls true --seeds 0,1,2,3,4"
  # the same study on Lite0 with the three attributes of the thesis's three-covariate run, the hybrid at the last
  # conv against the baseline (the same baseline settings as attractiveness_study_lite0; the stored run reused
  # that entry's five baseline cells, copied into its run folder, and trained only the five hybrid runs)
  [attractiveness_study_lite0_three]="-m hybridvision.apps.attractiveness.study $CELEBA --cache --models baseline,hybrid_last --covariate-sets Smiling+Young+High_Cheekbones --controls true --seeds 0,1,2,3,4"
  # the thesis's covariate controls on Lite0: the hybrid at the last conv given Male, shuffled Male or zeros (the
  # stored run reused the baseline and true-Male cells of attractiveness_study_lite0, copied into its run folder,
  # which have the same settings, and trained the ten control runs)
  [attractiveness_study_lite0_controls]="-m hybridvision.apps.attractiveness.study $CELEBA --cache --models baseline,hybrid_last --covariate-sets Male --controls true,shuffled,zeros --seeds 0,1,2,3,4"
  # the hybrid at the first and middle convs of Lite0 against the baseline, Male (the stored run reused the five
  # baseline cells of attractiveness_study_lite0, copied into its run folder, and trained the ten hybrid runs)
  [attractiveness_study_lite0_positions]="-m hybridvision.apps.attractiveness.study $CELEBA --cache --models baseline,hybrid_first,hybrid_middle --covariate-sets Male --controls true --seeds 0,1,2,3,4"
  # FiLM at the first and middle convs of Lite0 against the baseline, Male (the stored run reused the five
  # baseline cells of attractiveness_study_lite0, copied into its run folder, and trained the ten FiLM runs)
  [attractiveness_study_lite0_film_positions]="-m hybridvision.apps.attractiveness.study $CELEBA --cache --models baseline,film_first,film_middle --covariate-sets Male --controls true --seeds 0,1,2,3,4"
  # the recipe options (cosine + warm-up, MixUp, RandAugment) against the defaults on the validation faces only:
  # seed 0 each, seeds 1-2 for any that reaches the defaults at seed 0 (7-12 min a run on 2 cores)
  [attractiveness_recipe_val]="docs/results/attractiveness_recipe_compare.py $CELEBA"
  # the image-only baseline, seeds 0-4, with today's code and defaults (CelebA read as a table by the same pipeline
  # as any image + covariates table), beside attractiveness_study_lite0's baseline (5 runs, 7-12 min each)
  [attractiveness_lite0_defaults]="-m hybridvision.apps.attractiveness.study $CELEBA --cache --models baseline --seeds 0,1,2,3,4"
  # today's CelebA path against the code that made attractiveness_study_lite0: the same files, pixels, targets
  # and covariates in every split (the old code extracted from git; about a minute)
  [celeba_path_check]="docs/results/celeba_path_check.py $CELEBA"
  # the same image-only baseline (seeds 0-4) trained by the code that made attractiveness_study_lite0, on this
  # machine: that commit's own study command, its code extracted from git (5 runs, 8-10 min each on 2 cores)
  [attractiveness_lite0_old_code]="docs/results/celeba_old_code_baseline.py $CELEBA"
  # that code's baseline and today's (seeds 0-1), both under op determinism, today's with the training rows in
  # that code's order: are the histories identical to the last digit? (the old code extracted from git; 4 runs,
  # 8-12 min each)
  [celeba_order_check]="docs/results/celeba_order_check.py $CELEBA"
  # the study on the small from-scratch net at 48 px: the study's default grid (nine models, both covariate
  # sets, the four controls, 5 seeds; 325 runs, ~2 h on 2 quiet cores)
  [attractiveness_study_small48]="-m hybridvision.apps.attractiveness.study $CELEBA --backbone small --weights none --image-size 48 --epochs 6 --cache"
  # the covariate app on a real table of images and covariates (HAM10000 skin lesions: age, sex, body site; 18%
  # malignant): the covariates-only floor, baseline, late fusion, the hybrid and FiLM at the last conv, five seeds,
  # pretrained Lite0 at 96 px for 3 epochs (20 runs, ~2-4 min each on 2 cores)
  [covariates_ham10000_study]="-m hybridvision.apps.attractiveness.study $HAM --models baseline,late_fusion,hybrid_last,film_last --controls true --seeds 0,1,2,3,4 --image-size 96 --epochs 3 --cache"
  # the same study at the defaults (224 px, 5 epochs): the baseline, late fusion, the hybrid and FiLM at the last
  # conv (20 runs, 7-11 min each on 2 cores)
  [covariates_ham10000_study_224]="-m hybridvision.apps.attractiveness.study $HAM --models baseline,late_fusion,hybrid_last,film_last --controls true --seeds 0,1,2,3,4 --cache"
  # --covariate-lr-multiplier 1, 10, 100 for late fusion and the hybrid at the last conv, seeds 0 and 1, on the same
  # table at 96 px for 3 epochs (the default per model was chosen on its validation ROC AUC; 12 runs, 2-4 min each)
  [attractiveness_covariate_lr]="docs/results/covariate_lr_compare.py --data-dir $SHARED/ham10000_sample"
  # orientation_light, frozen pretrained EfficientNet-Lite0, then its top 20 layers fine-tuned
  [orientation_lite0]="-m hybridvision.apps.orientation_light.train --task orientation --data-dir $FACES/orient --holdout-fraction 0.5 --model efficientnet_lite0 --image-size 96 --epochs 10 --finetune-layers 20"
  [light_lite0]="-m hybridvision.apps.orientation_light.train --task light --data-dir $FACES/source_light --holdout-fraction 0.5 --model efficientnet_lite0 --image-size 96 --epochs 10 --finetune-layers 20"
  # orientation_light with and without the report's BatchNorm patch: frozen pretrained Lite0 + head, 5 epochs, 96 px;
  # off = the base's BatchNorm layers trainable and in training mode while the rest of the base is frozen
  [orientation_bnfix_on]="-m hybridvision.apps.orientation_light.train --task orientation --data-dir $FACES/orient --holdout-fraction 0.5 --model efficientnet_lite0 --image-size 96 --epochs 5 --batchnorm-fix on"
  [orientation_bnfix_off]="-m hybridvision.apps.orientation_light.train --task orientation --data-dir $FACES/orient --holdout-fraction 0.5 --model efficientnet_lite0 --image-size 96 --epochs 5 --batchnorm-fix off"
  [light_bnfix_on]="-m hybridvision.apps.orientation_light.train --task light --data-dir $FACES/source_light --holdout-fraction 0.5 --model efficientnet_lite0 --image-size 96 --epochs 5 --batchnorm-fix on"
  [light_bnfix_off]="-m hybridvision.apps.orientation_light.train --task light --data-dir $FACES/source_light --holdout-fraction 0.5 --model efficientnet_lite0 --image-size 96 --epochs 5 --batchnorm-fix off"
  # digit_pairs: the report's CNN, deep CNN and aux net, and the earlier aux layout ('same' padding, one dropout, an
  # extra dense 64), 5 rounds each (not the report's 10: 15-60 s per run on 2 shared cores). The stored run also
  # trained the earlier cnn and deep CNN, since dropped (notes.md)
  [digit_pairs_compare]="-m hybridvision.apps.digit_pairs.compare --data-dir $SHARED/mnist --rounds 10 --models cnn,deep_cnn,aux,aux_same_dense"
  # patch_training, pretrained EfficientNet-Lite0 (the default), switch-epoch sweep
  # benchmarks: speed ratios measured side by side in one run
  [bench_feature_extraction]="-m benchmarks.feature_extraction $PACS --json"
  [bench_hybrid_conv]="-m benchmarks.hybrid_conv --json"
  [bench_input_pipeline]="-m benchmarks.input_pipeline $PACS --json"
  # synthetic 16x16 JPEGs at 2,000 / 20,000 / 200,000 images, written to tmpfs (deleting 400,000 files is slow on disk)
  [bench_scale]="-m benchmarks.scale --out /dev/shm/hybridvision-bench-scale --json"
  # every K gets the same 10 whole-image epochs after its K patch epochs (--full-epochs)
  [patch_sweep_lite0]="-m hybridvision.apps.patch_training.sweep $VOC --image-size 128 --full-epochs 10 --switch-epochs 0,1,2,3 --cache"
)
ORDER=(make_demo cross_modal_photo_finetune cross_modal_photo_finetune_seed1 cross_modal_photo_finetune_seed2 cross_modal_photo_frozen cross_modal_photo_linear_probe
       cross_modal_photo_finetune_lite2 cross_modal_photo_finetune_lite2_seed1 cross_modal_photo_linear_probe_lite2 cross_modal_leave_one_out_frozen
       cross_modal_all_frozen cross_modal_leave_one_out cross_modal_all cross_modal_defaults_val cross_modal_defaults_val_seed1 cross_modal_domainbed_lite0
       cross_modal_domainbed_lite2 cross_modal_photo_scratch attractiveness_baseline_male attractiveness_hybrid_male attractiveness_study_small48 attractiveness_study_lite0 attractiveness_study_lite0_three attractiveness_study_lite0_controls attractiveness_study_lite0_positions attractiveness_study_lite0_film_positions attractiveness_recipe_val attractiveness_lite0_defaults celeba_path_check attractiveness_lite0_old_code celeba_order_check
       attractiveness_covariate_lr covariates_ham10000_study covariates_ham10000_study_224 orientation_lite0 light_lite0 orientation_bnfix_on orientation_bnfix_off light_bnfix_on light_bnfix_off digit_pairs_compare patch_sweep_lite0 bench_feature_extraction bench_hybrid_conv bench_input_pipeline bench_scale)

if [[ "${1:-}" == "--list" ]]; then
  for name in "${ORDER[@]}"; do echo "$name: python ${CMD[$name]}"; done
  exit 0
fi
[[ -d "$SHARED" ]] || { echo "error: no samples at $SHARED; set SHARED=/path/to/shared/data" >&2; exit 2; }
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=("${ORDER[@]}")
for name in "${names[@]}"; do
  [[ -n "${CMD[$name]:-}" ]] || { echo "error: unknown entry $name; see --list" >&2; exit 2; }
  run_dir="$RUNS/$name"
  [[ "${KEEP_RUNS:-0}" == 1 ]] || rm -rf "$run_dir"
  # Hand-written notes beside a stored output (notes.md) survive its regeneration.
  notes=""
  if [[ -f "$OUT/$name/notes.md" ]]; then notes=$(mktemp); cp "$OUT/$name/notes.md" "$notes"; fi
  rm -rf "$OUT/$name"
  mkdir -p "$OUT/$name"
  if [[ -n "$notes" ]]; then mv "$notes" "$OUT/$name/notes.md"; fi
  where=(--run-dir "$run_dir" --quiet)
  [[ "${CMD[$name]}" == *".sweep "* ]] && where=(--out "$run_dir" --quiet)  # one run per setting under --out
  [[ "${CMD[$name]}" == *".compare "* ]] && where=(--out "$run_dir" --quiet)  # one run per model and round under --out
  [[ "$name" == bench_* ]] && where=()  # benchmarks write nothing but their output
  [[ "$name" == make_demo ]] && where=(--out "$run_dir")  # one run directory per app under --out
  echo "python ${CMD[$name]} ${where[*]}" > "$OUT/$name/command.txt"
  echo "== $name: python ${CMD[$name]}"
  start=$(date +%s)
  # shellcheck disable=SC2086
  $PY ${CMD[$name]} "${where[@]}" 2>&1 | grep -v -E "^(WARNING: All log|I0000|E0000|W0000|To enable)" \
    | tee "$OUT/$name/output.txt"
  echo "wall seconds: $(( $(date +%s) - start ))" >> "$OUT/$name/output.txt"
  if [[ "$name" == bench_scale ]]; then grep '^{' "$OUT/$name/output.txt" | tail -1 > "$OUT/$name/scale.json"; fi
  for file in metrics.json modality_table.md leave_one_out_table.md domainbed_table.md retrieval_table.md linear_probe.md linear_probe.json sweep.md sweep.csv sweep_per_class_ap.md \
              summary.md summary.csv comparison.md comparison.csv study.md study.csv study.png history.csv; do
    if [[ -f "$run_dir/$file" ]]; then cp "$run_dir/$file" "$OUT/$name/"; fi  # (a bare && ended the script with 1)
  done
done
