#!/usr/bin/env bash
# How resources/models/fracatlas-lite0 was made (issue: default bundle). Run from the
# repository root with the FracAtlas subset at ../shared/datasets/fracatlas; ~2 h on a
# 2-core CPU. Deterministic (seed 0), but CPU kernels may differ in the last digits.
set -euxo pipefail
OUT=resources/models/fracatlas-lite0
# 1. Fracture model: all FracAtlas regions (more fractures to learn from), evaluated per
#    part; EfficientNet-Lite0 from ImageNet (Apache-2.0 weights), 256 px, 3 epochs.
#    Made before issue 14: the last line restores that version's choices (selection and
#    temperature on the validation split, no box head, Grad-CAM on the last layer, mean,
#    parts with 20 studies of both classes); without it this command trains a v2 model
#    (see docs/training.md). A doubt band is written either way (the v1 bundle has none).
radview train --format fracatlas --data ../shared/datasets/fracatlas \
  --task abnormality --arch efficientnet_lite0 --init imagenet --size 256 --epochs 3 \
  --fp16 --name fracatlas-lite0 --version 1.0.0 --out $OUT --overwrite \
  --run-dir data_cache/runs/fracture --no-progress \
  --holdout 0 --boxes none --cam-method gradcam --calibration temperature \
  --aggregation mean --min-part-positives 0
# 2. Router over HAND/WRIST/FOREARM/ELBOW/HUMERUS/SHOULDER/ARM/OTHER (bundle 1.1.0), merged
#    into the bundle: 288 px (elbow vs forearm), domain randomization for films from other
#    hospitals (crops, markers, rulers, casts, two-up films, processing, noise, JPEG,
#    borders, inversion), rare classes sampled by the square root of their size, label
#    smoothing and H/M/L confidence weights for the fuzzy borders; 15% of the training
#    groups held out for selection and threshold fitting. Five epochs, ~13-38 min each with
#    one torch thread on a 2-core CPU (OMP_NUM_THREADS=1: two threads thrash when anything
#    else runs). This run was interrupted and resumed twice (--resume: started with
#    --epochs 8 and two threads, stopped after epoch 1; resumed with one thread, stopped
#    during epoch 3; resumed with --epochs 5), which is equivalent to the command below up
#    to CPU floating-point differences (the lr schedule depends only on validation losses).
OMP_NUM_THREADS=1 radview train --format fracatlas --data ../shared/datasets/fracatlas \
  --task router --arch efficientnet_lite0 --init imagenet --size 288 --epochs 5 --lr 3e-4 \
  --augment domain --balance sqrt --label-smoothing 0.1 --confidence-weights H=1,M=0.8,L=0.5 \
  --holdout 0.15 --fp16 --merge-into $OUT --out $OUT \
  --run-dir data_cache/runs/router-v2 --no-progress
# 2b. Routing thresholds fitted on the selection split, figures and the stress test on the
#     validation split; the general upper-limb entry for uncertain routing; the model card.
python bench/router_stress.py --bundle $OUT --fit --out data_cache/router_stress.json
python resources/models/fit_fallback.py $OUT > data_cache/fallback.json
python resources/models/routing_card.py $OUT data_cache/router_stress.json data_cache/fallback.json
# 3. FracAtlas has no finger-only films, so training could not route FINGER; a FINGER
#    study (from a DICOM tag or a MURA XR_FINGER folder) goes to the hand's model.
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
path = Path(sys.argv[1]) / "manifest.json"
m = json.loads(path.read_text(encoding="utf-8"))
m["routing"].setdefault("FINGER", m["routing"]["HAND"])
m["version"] = "1.1.0"  # 1.1.0: router v2 with fitted thresholds and the upper-limb fallback
path.write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
PY
# 4. Figures for the model card's appendix (upper limb only, Grad-CAM localization).
radview evaluate --bundle $OUT --data ../shared/datasets/fracatlas --format fracatlas \
  --parts upper --out data_cache/eval_upper --no-progress
python bench/cam_localization.py --bundle $OUT
