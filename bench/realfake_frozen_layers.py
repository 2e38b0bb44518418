"""Frozen face-ResNet statistics as a StyleGAN detector: does any layer of dlib's network see more
than its 128-d encoding?

On the dev set (Kaggle "140k Real and Fake Faces" subset, 700/100/100 images per class), each
image goes through dlib's face descriptor ResNet (embedlab's PyTorch port, frozen), as the aligned
150 px chip that `encode` cuts (HOG detector, the largest face) and as the whole 256 px image. After
the stem and after every residual block, each channel's spatial mean and standard deviation are
kept (3,584 values), and the 128-d encoding beside them. A logistic regression is fitted on train,
its C chosen on valid by ROC AUC, and scored on test. Images where HOG finds no face are left out
of the chip rows.

    nice -n 10 .venv/bin/python bench/realfake_frozen_layers.py     # about 2 minutes on 2 cores

Writes results/bench/realfake_frozen_layers.json.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from bench_data import bench_parser, load_average, table_or_exit  # noqa: E402  (bench/ is on sys.path)

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def layer_statistics(net, images: np.ndarray) -> np.ndarray:
    """Per image: the mean and standard deviation of every channel after the stem and each block,
    then the encoding."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        x = F.max_pool2d(F.relu(net.stem(net.normalise(torch.from_numpy(images)))), 3, 2)
        out = [x.mean((2, 3)), x.std((2, 3))]
        for block in net.blocks:
            x = block(x)
            out += [x.mean((2, 3)), x.std((2, 3))]
        out.append(net.fc(x.mean((2, 3))))
    return torch.cat(out, 1).numpy()


def fit_and_score(X: np.ndarray, y: np.ndarray, split: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, valid, test = (split == s for s in ("train", "valid", "test"))
    best = None
    for c in C_GRID:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(X[train], y[train])
        auc = roc_auc_score(y[valid], model.decision_function(X[valid]))
        if best is None or auc > best[0]:
            best = (auc, c, model)
    auc, c, model = best
    score = model.decision_function(X[test])
    return {"dims": int(X.shape[1]), "C": c, "valid_roc_auc": float(auc),
            "test_roc_auc": float(roc_auc_score(y[test], score)),
            "test_accuracy": float(((score > 0).astype(int) == y[test]).mean()), "test_images": int(test.sum())}


def main() -> int:
    parser = bench_parser(__doc__, "realfake_frozen_layers.json")
    args = parser.parse_args()

    from embedlab.datasets.images import read_image
    from embedlab.features import create_extractor, dlib_resnet

    table = table_or_exit(args.data, args.limit)
    print(f"{len(table)} images from {args.data}; load average {load_average()}", flush=True)
    hog = create_extractor("encoding[detector=hog]")
    hog.prepare()
    net = dlib_resnet.load_descriptor_net(device="cpu")
    chip_rows, whole_rows, found = [], [], []
    for i, path in enumerate(table["path"]):
        image = read_image(path)
        box, _ = hog.locate(image)
        found.append(box is not None)
        if box is not None:
            chip_rows.append(layer_statistics(net, dlib_resnet.face_chips(image, [box]))[0])
        whole_rows.append(layer_statistics(net, image[None])[0])
        if (i + 1) % 300 == 0:
            print(f"{i + 1}/{len(table)} images", flush=True)
    found = np.array(found)
    y = (table["label"] == "fake").to_numpy().astype(int)
    split = table["split"].to_numpy()
    chips, whole = np.stack(chip_rows), np.stack(whole_rows)
    results = {
        "chip, every layer": fit_and_score(chips, y[found], split[found]),
        "whole image, every layer": fit_and_score(whole, y, split),
        "chip and whole image": fit_and_score(np.hstack([chips, whole[found]]), y[found], split[found]),
        "chip, encoding only": fit_and_score(chips[:, -128:], y[found], split[found]),
    }
    for name, r in results.items():
        print(f"{name:>26}: {r['dims']:5d} values, C {r['C']}, valid AUC {r['valid_roc_auc']:.3f}, "
              f"StyleGAN test AUC {r['test_roc_auc']:.3f}, accuracy {r['test_accuracy']:.3f}")
    out = {"data": str(args.data), "images": len(table), "faces_found": int(found.sum()), "results": results,
           "load_average_after": load_average()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
