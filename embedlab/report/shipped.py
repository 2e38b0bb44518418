"""The report's section on the shipped models: their verdicts on the sample, per class, with example faces."""

from __future__ import annotations

import os

from embedlab import analysis
from embedlab.analysis import ShippedScore
from embedlab.report.page import esc, fmt, html_table
from embedlab.report.sections import Context
from embedlab.report.thumbnails import stratified_order, thumb_html, thumbnail_uri

#: example faces shown per scored set
EXAMPLES_PER_SET = 8


def _intro(fitted_here: bool) -> str:
    demo = (" The models in the next section are fitted in seconds on the sample's few training images; "
            "these are what <code>predict</code> uses." if fitted_here else "")
    return ("<p>These are the models embedlab ships in <code>embedlab/pretrained/</code>, the ones "
            "<code>embedlab predict --task real-fake</code> and <code>embedlab predict --task emotion</code> use. "
            "They were trained once on the full datasets, by the command shown for each; here each is run through "
            "its own <code>predict</code> on the sample's test images (and the generated emotion portraits), "
            "so the verdicts are those <code>predict</code> prints." + demo + "</p>"
            '<p class="note">The sample is tiny: <b>n</b> is the number of images behind each figure and the 95% '
            "intervals (Wilson) are wide. The sets the run was scored on when it was trained, with far more "
            "images, are shown beside them for scale.</p>")


def shipped_section(ctx: Context) -> None:
    """Per shipped model: how it was trained, accuracy per set and class, confusion matrices, example faces."""
    if not ctx.shipped:
        return
    parts = [_intro(bool(ctx.records))]
    for score in ctx.shipped:
        parts.append(f"<h3>{esc(score.task)}: {esc(score.name)}</h3>" + _trained(score) + _figures_table(score))
        per_class = analysis.shipped_per_class(score)
        figs = [ctx.page.figure(analysis.plot_per_class_accuracy(
            per_class, order=analysis.EMOTIONS + ("real", "fake"), by="set",
            title=f"Accuracy per class: shipped {score.task} model on the sample"))]
        for set_name, s in score.sets.items():
            if s["n"]:
                figs.append(ctx.page.figure(analysis.plot_confusion(
                    s["labels"], s["confusion_matrix"],
                    title=f"Shipped {score.task} model · {set_name} (n={s['n']})")))
        parts.append('<p class="muted">Accuracy per class is the share of each true label\'s images given '
                     "that label; confusion matrices have true labels as rows, normalised to 100% (hover for "
                     f'counts).</p><div class="grid">{"".join(figs)}</div>')
        parts.append(_examples(score, ctx.seed))
    ctx.page.add("shipped", "Results: the shipped models", "".join(parts))


def _trained(score: ShippedScore) -> str:
    p = score.params
    data = p.get("data") or {}
    counts = (p.get("splits") or {}).get("counts") or {}
    training = p.get("training") or {}
    split_text = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    bits = [f"{esc(p.get('model'))} network on {esc(data.get('name'))} ({esc(split_text)} images)"]
    if training.get("epochs_run"):
        bits.append(f"{training['epochs_run']} epochs, best epoch {training.get('best_epoch')}")
    html = (f"<p>Trained by <code>{esc(score.command or p.get('command') or 'unknown')}</code> "
            f"(<code>{esc(score.folder.name)}/COMMAND</code>): {'; '.join(bits)}.")
    cut = score.threshold
    if cut:
        positive = esc(cut.get("positive_class"))
        html += (f" A face is called <b>{positive}</b> when its probability of being {positive} is at or above "
                 f"the run's decision threshold <b>{fmt(cut.get('value'))}</b>, chosen on "
                 f"{esc(cut.get('chosen_on') or 'validation')} so that at most {fmt(cut.get('target_fpr'), 'pct')} "
                 f"of {esc(cut.get('negative_class') or 'the other class')} faces are; that is the threshold "
                 "<code>predict</code> applies, and the verdicts below are at it.")
    return html + "</p>"


def _figures_table(score: ShippedScore) -> str:
    rows = [{"set": name, "dataset": s["dataset"], "n": s["n"], "accuracy": s["accuracy"], "ci": s["accuracy_ci"],
             "not_scored": s["not_scored"], "fitted_on": s["fitted_on"]} for name, s in score.sets.items()]
    data_name = (score.params.get("data") or {}).get("name")
    for name, own in score.own_sets.items():
        rows.append({"set": f"when trained: its {name} set", "dataset": data_name if name == "test" else name,
                     "n": own["n"], "accuracy": own.get("accuracy"), "ci": own.get("accuracy_ci")})
    return html_table(rows, [("set", "set", ""), ("dataset", "dataset", ""), ("n", "n images", "int"),
                             ("accuracy", "accuracy", "pct"), ("ci", "95% CI", "ci"),
                             ("not_scored", "not scored", "int"),
                             ("fitted_on", "among its training or validation images", "int")],
                      caption=f"Shipped {score.task} model: accuracy of its verdicts")


def _examples(score: ShippedScore, seed: int) -> str:
    pred = score.predictions
    blocks = []
    for set_name, part in pred.groupby("set", sort=False):
        part = part[part["ok"].astype(bool)]
        if part.empty:
            continue
        pick = part.iloc[stratified_order(part["label"].astype(str).tolist(), seed=seed)[:EXAMPLES_PER_SET]]
        figs = "".join(_example(r, score) for r in pick.to_dict("records"))
        blocks.append(f'<div class="label">{esc(set_name)}</div><div class="thumbs">{figs}</div>')
    if not blocks:
        return ""
    return ("<p class=\"muted\">Example faces, a few of each label in turn, as the model saw them (the face "
            "crop where it cropped one), with its verdict.</p>" + "".join(blocks))


def _example(row: dict, score: ShippedScore) -> str:
    crop = row.get("crop_path")
    shown = str(crop) if isinstance(crop, str) and os.path.isfile(crop) else str(row["path"])
    pred = str(row["pred"])
    cut = score.threshold
    if cut:
        positive = str(cut.get("positive_class"))
        prob = f"P({esc(positive)}) {esc(fmt(row.get(f'proba_{positive}')))}"
    else:
        prob = esc(fmt(row.get(f"proba_{pred}"), "pct"))
    mark = "right" if row["correct"] else "wrong"
    extra = (f"true <b>{esc(row['label'])}</b>, predicted <b>{esc(pred)}</b> ({prob}) · "
             f'<span class="verdict-{mark}">{mark}</span>')
    return thumb_html(thumbnail_uri(shown), os.path.basename(str(row["path"])), path=str(row["path"]), extra=extra,
                      css=f"thumb mistake example-{mark}")

