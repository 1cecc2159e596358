#!/usr/bin/env bash
# How resources/models/fracatlas-lite0-384 (the default bundle, 2.1.0) was made. Run from
# the repository root with the FracAtlas subset at ../shared/datasets/fracatlas; ~3.5 h on
# a 2-core CPU. Deterministic (seed 0), but CPU kernels may differ in the last digits.
set -euxo pipefail
OUT=resources/models/fracatlas-lite0-384
# 1. Fracture model v2 (issue 14) on all FracAtlas regions (more fractures to learn from),
#    evaluated per part: EfficientNet-Lite0 from ImageNet (Apache-2.0 weights) at 384 px;
#    a dense fracture-heatmap box head on the stride-16 layer, trained on FracAtlas's
#    fracture_boxes.csv (--boxes auto, the default); LayerCAM on the stride-8 layer; flips
#    and ±30° rotations. 15% of the training groups are held out (--holdout 0.15, the
#    default): model selection, Platt calibration, thresholds, the doubt band, the study
#    aggregation and the box operating points are fitted there; the figures are measured
#    on the validation split. ~13 min per epoch with two torch threads on a quiet 2-core
#    CPU. This run was stopped after epoch 1 and resumed (--resume), and ended after epoch
#    7 of 12 by resuming with --epochs 7, which exports the best epoch (5, lowest selection loss)
#    (the plateau schedule depends only on the selection losses, so this equals the
#    command below up to CPU floating point).
OMP_NUM_THREADS=2 radview train --format fracatlas --data ../shared/datasets/fracatlas \
  --task abnormality --arch efficientnet_lite0 --init imagenet --size 384 \
  --epochs 7 --batch-size 8 --lr 3e-4 --weight-decay 1e-5 --lr-patience 2 \
  --fp16 --name fracatlas-lite0-384 --version 2.0.0 --out $OUT --overwrite \
  --run-dir data_cache/runs/fracture-v2 --no-progress
# 2. Router over HAND/WRIST/FOREARM/ELBOW/HUMERUS/SHOULDER/ARM/OTHER (the router of bundle
#    1.1.0, unchanged), merged into the bundle: 288 px (elbow vs forearm), domain
#    randomization for films from other hospitals (crops, markers, rulers, casts, two-up
#    films, processing, noise, JPEG, borders, inversion), rare classes sampled by the
#    square root of their size, label smoothing and H/M/L confidence weights for the fuzzy
#    borders; 15% of the training groups held out. Five epochs, ~13-38 min each with one
#    torch thread (OMP_NUM_THREADS=1: two threads thrash when anything else runs). That
#    run was interrupted and resumed twice (--resume), equivalent to the command below up
#    to CPU floating point. (It was trained first, into bundle 1.1.0; the fracture model of
#    step 1 was merged into a copy of that bundle without its 1.0.0 fracture entries,
#    which gives the same bundle as this order.)
OMP_NUM_THREADS=1 radview train --format fracatlas --data ../shared/datasets/fracatlas \
  --task router --arch efficientnet_lite0 --init imagenet --size 288 --epochs 5 --lr 3e-4 \
  --augment domain --balance sqrt --label-smoothing 0.1 --confidence-weights H=1,M=0.8,L=0.5 \
  --holdout 0.15 --fp16 --merge-into $OUT --out $OUT \
  --run-dir data_cache/runs/router-v2 --no-progress
# 2b. The router's class bias (a per-class logit shift: the network's prior gave WRIST
#     and SHOULDER films to HAND and HUMERUS) and its two thresholds, fitted on the
#     selection split; figures and the stress test on the validation split; the general
#     upper-limb entry for uncertain routing; the model card's routing section. The
#     stress transforms run at the end (step 4), on the finished bundle, since whether a
#     film's scoring changes depends on its final entries.
python bench/router_stress.py --bundle $OUT --fit --fit-bias --transforms 0 \
  --out data_cache/router_figs_bias.json
# 2c. (2.1.0) The box head's peak votes in the fracture probability: logistic regression
#     of the label on the classifier's logit and the head's largest heat logit, fitted on
#     the upper-limb films of the selection split (the films the routing scores), stored as
#     box_head.score_weight/score_offset and the temperature; the threshold and the DOUBT
#     edge refitted on the same films; the validation figures measured again and the
#     model card's fracture section brought up to date. Then the general upper-limb entry
#     (which copies the model's calibration).
python resources/models/fit_stack.py $OUT --version 2.1.0 > data_cache/stack-2.1.json
python resources/models/stack_card.py $OUT
python resources/models/fit_fallback.py $OUT > data_cache/fallback-2.1.json
# 3. FracAtlas has no finger-only films, so training could not route FINGER; a FINGER
#    study (from a DICOM tag or a MURA XR_FINGER folder) goes to the hand's model.
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
path = Path(sys.argv[1]) / "manifest.json"
m = json.loads(path.read_text(encoding="utf-8"))
m["routing"].setdefault("FINGER", m["routing"]["HAND"])
path.write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
PY
# 4. Figures for the model card's appendix: the upper limb alone (AUROC, sensitivity and
#    specificity at the thresholds), where the maps and boxes point, and the warm 3-view
#    study with probabilities, maps and boxes.
radview evaluate --bundle $OUT --data ../shared/datasets/fracatlas --format fracatlas \
  --parts upper --out data_cache/eval_upper_v2 --no-progress
python bench/cam_localization.py --bundle $OUT
python bench/ai_study.py --bundle $OUT --skip-predict --repeats 5
# 5. The router stress test, all 20 transforms (~25 min with two torch threads), and the
#    model card's routing section with it.
python bench/router_stress.py --bundle $OUT --transforms 20 --out data_cache/router_stress_21.json
python resources/models/routing_card.py $OUT data_cache/router_figs_bias.json \
  data_cache/fallback-2.1.json data_cache/router_stress_21.json
