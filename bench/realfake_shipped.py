"""The shipped real-fake model on the four-generator test set of bench/realfake_generalisation.py.

    .venv/bin/python bench/realfake_shipped.py [RUN_FOLDER]     # default: embedlab/pretrained/real-fake

Every generator's test fakes against all test reals (ROC AUC, TPR at 1% FPR, recall at the shipped
threshold) and the real recall per origin, written to results/bench/realfake_shipped_on_4sources.json.
Run bench/realfake_generalisation.py first: it writes the manifest this reads.
"""
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
sys.path.insert(0, "bench")
import realfake_generalisation as rg
import embedlab
from sklearn.metrics import roc_auc_score
m = pd.read_csv(rg.MANIFEST)
m["abs"] = [str((rg.MANIFEST.parent / p).resolve()) for p in m["path"]]
test = m[m["split"] == "test"]
folder = sys.argv[1] if len(sys.argv) > 1 else "embedlab/pretrained/real-fake"
run = embedlab.load_run(folder)
out = run.predict(test["abs"].tolist(), cache_dir="results/cache", workers=2, crops_dir=None)
test = test.assign(p=out["proba_fake"].to_numpy())
cut = run.params["threshold"]["value"]
reals = test[test["label"] == "real"]
res = {"command": " ".join(["python", "bench/realfake_shipped.py", *sys.argv[1:]]), "run": folder,
       "run_name": run.params["name"], "run_created": run.params.get("created"), "threshold": cut,
       "generators": {}, "real_recall": {}}
for g in rg.GENERATORS:
    f = test[(test["label"] == "fake") & (test["source"] == g)]
    both = pd.concat([f, reals]); both = both[both["p"].notna()]
    y = (both["label"] == "fake").to_numpy().astype(int); s = both["p"].to_numpy()
    res["generators"][g] = {"roc_auc": float(roc_auc_score(y, s)), "tpr_at_1pct_fpr": rg.tpr_at(y, s, 0.01),
                            "recall_at_threshold": float((f["p"] >= cut).mean())}
for o, r in reals.groupby("origin"):
    res["real_recall"][o] = {"n": int(len(r)), "recall": float((r["p"] < cut).mean())}
Path("results/bench/realfake_shipped_on_4sources.json").write_text(json.dumps(res, indent=2))
print(json.dumps(res, indent=1))
