#!/usr/bin/env bash
# How resources/models/fracatlas-lite0 was made (issue: default bundle). Run from the
# repository root with the FracAtlas subset at ../shared/datasets/fracatlas; ~20 min on a
# 2-core CPU. Deterministic (seed 0), but CPU kernels may differ in the last digits.
set -euxo pipefail
OUT=resources/models/fracatlas-lite0
# 1. Fracture model: all FracAtlas regions (more fractures to learn from), evaluated per
#    part; EfficientNet-Lite0 from ImageNet (Apache-2.0 weights), 256 px, 3 epochs.
radview train --format fracatlas --data ../shared/datasets/fracatlas \
  --task abnormality --arch efficientnet_lite0 --init imagenet --size 256 --epochs 3 \
  --fp16 --name fracatlas-lite0 --version 1.0.0 --out $OUT --overwrite \
  --run-dir data_cache/runs/fracture --no-progress
# 2. Router over HAND/WRIST/FOREARM/ELBOW/HUMERUS/SHOULDER/ARM/OTHER, merged into the
#    bundle; label smoothing and H/M/L confidence weights for the fuzzy borders.
radview train --format fracatlas --data ../shared/datasets/fracatlas \
  --task router --arch efficientnet_lite0 --init imagenet --size 224 --epochs 2 \
  --label-smoothing 0.1 --confidence-weights H=1,M=0.8,L=0.5 \
  --fp16 --merge-into $OUT --out $OUT \
  --run-dir data_cache/runs/router --no-progress
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
# 4. Figures for the model card's appendix (upper limb only, Grad-CAM localization).
radview evaluate --bundle $OUT --data ../shared/datasets/fracatlas --format fracatlas \
  --parts upper --out data_cache/eval_upper --no-progress
python bench/cam_localization.py --bundle $OUT
