"""Issue #11: why a model trained from scratch gives every crop the same probability.

Usage: python bench/constant_model.py DATA_DIR/crops BACKBONE EPOCHS IMAGE_SIZE [BN_MOMENTUM|keep]  (LR=1e-3 env)
A grouped split of the crops (30 % test, 10 % validation groups), `train()` as the pipeline runs it,
then test probabilities in inference mode and with batch statistics, the moving statistics of some
batch-norm layers, and the spread of the pooled features. Results: docs/learning.md.
"""
import sys, re, json, time, glob, os
from pathlib import Path
import numpy as np
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import keras, tensorflow as tf
from shared.train_config import TrainConfig
from workers.training.fit import train
from workers.training.inference import load_model, predict_probabilities
from workers.training.data import make_dataset
from workers.training.evaluate import compute_metrics

crops_root = Path(sys.argv[1])
backbone = sys.argv[2]; epochs = int(sys.argv[3]); size = int(sys.argv[4]); momentum = sys.argv[5] if len(sys.argv) > 5 else "keep"
items = []
for p in sorted(crops_root.rglob("*.png")):
    folder, video = p.parts[-3], p.parts[-2]
    label = 1 if folder == "Celeb-synthesis" else 0
    m = re.match(r"id(\d+)_", video)
    group = f"id{m.group(1)}" if m and folder != "YouTube-real" else f"yt{video}"
    items.append((str(p), label, f"{folder}/{video}", group))
groups = sorted({g for *_, g in items})
rng = np.random.default_rng(0); rng.shuffle(groups)
test_g = set(groups[: len(groups) * 3 // 10]); val_g = set(groups[len(groups) * 3 // 10: len(groups) * 4 // 10])
part = lambda g: "test" if g in test_g else "val" if g in val_g else "train"
sp = {k: [(p, l, v) for p, l, v, g in items if part(g) == k] for k in ("train", "val", "test")}
for k, v in sp.items(): print(k, len(v), "fake", sum(l for _, l, _ in v), "videos", len({x[2] for x in v}))
if momentum != "keep":
    import workers.training.models as M
    orig = M._build_backbone
    def patched(*a, **kw):
        base = orig(*a, **kw)
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(momentum)
        return base
    M._build_backbone = patched
out = Path(f"/tmp/constant-model-{backbone}-{epochs}-{size}-{momentum}")
t0 = time.time()
fitted = train([p for p, *_ in sp["train"]], [l for _, l, _ in sp["train"]], [p for p, *_ in sp["val"]], [l for _, l, _ in sp["val"]],
               TrainConfig.from_options(dict(backbone=backbone, weights="none", epochs=epochs, batch_size=16, image_size=size, learning_rate=float(os.environ.get("LR", "1e-4")))), out)
print("train s", round(time.time() - t0, 1), "best", fitted["best_epoch"], {k: [round(x, 3) for x in v] for k, v in fitted["history"].items()})
model = load_model(fitted["model_path"])
tp = [p for p, *_ in sp["test"]]; tl = [l for _, l, _ in sp["test"]]; tv = [v for *_, v in sp["test"]]
prob = predict_probabilities(model, tp)
m = compute_metrics(tl, prob, tv)
print("INFERENCE mode: spread", float(np.ptp(prob)), "min", float(prob.min()), "max", float(prob.max()), "auc", m["auc"], "video_auc", m["video_auc"])
ds = make_dataset(tp, None, batch_size=len(tp), backbone=backbone, training=False, image_size=size, cache=False)
x = next(iter(ds))
pt = model(x, training=True).numpy().reshape(-1)
mt = compute_metrics(tl, pt, tv)
print("BATCH-STATS (training=True) mode: spread", float(np.ptp(pt)), "auc", mt["auc"], "video_auc", mt["video_auc"])
# moving statistics vs batch statistics of the first BN layers
bns = [l for l in model.layers[1].layers if isinstance(l, keras.layers.BatchNormalization)]
print("BN layers", len(bns), "momentum", bns[0].momentum)
for l in bns[:2] + bns[-2:]:
    print(l.name, "moving_mean|avg", float(np.mean(np.abs(l.moving_mean.numpy()))), "moving_var avg", float(np.mean(l.moving_variance.numpy())))
# activations of the pooled features in inference mode
feat = keras.Model(model.inputs, model.get_layer("pool").output)
f_inf = feat(x, training=False).numpy(); f_tr = feat(x, training=True).numpy()
print("pooled features: inference std over crops", float(f_inf.std(0).mean()), "mean", float(f_inf.mean()), "| batch-stats std", float(f_tr.std(0).mean()), "mean", float(f_tr.mean()))
