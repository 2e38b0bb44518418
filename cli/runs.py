"""`embedlab runs`: list fitted runs and show one; the tables `fit` prints too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional

import typer
from rich.table import Table

from embedlab.runs.provenance import located
from embedlab_cli.app import app, clean_errors, console, err_console, fail, print_csv, print_json, runs_option
from embedlab_cli.terminal import shown


runs_app = typer.Typer(help="List fitted runs and show their figures.", invoke_without_command=True)
app.add_typer(runs_app, name="runs")


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_ci(value: Any, ci: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}\n[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def threshold_line(cut: dict) -> str:
    """One line saying which threshold labels images, and why that one."""
    positive = cut.get("positive_class", "fake")
    text = f"threshold {cut['value']:.4f} on P({positive}): {positive} at or above it"
    if cut.get("source") == "given":
        return text + " (given with --threshold)"
    if cut.get("source") == "default":
        return text + " (the run saved no threshold: the most probable class)"
    negative = cut.get("negative_class") or "other"
    text += (f"; chosen on {cut.get('chosen_on')} so that at most {cut.get('target_fpr', 0):.1%} of {negative} "
             f"images are called {positive}")
    if cut.get("fpr") is not None and cut.get("recall") is not None:
        text += f" (there: {cut['fpr']:.1%} were, and {cut['recall']:.1%} of the {positive} images were caught)"
    if cut.get("chosen_on") == "train":
        text += ("; the data has no validation split, so new reals will pass it more often than on "
                 "the training images")
    return text


def sources_table(name: str, m: dict) -> Table:
    """Each source's fakes against all the reals of one set."""
    cut = (m.get("at_threshold") or {}).get("threshold")
    table = Table(title=f"{shown(name)}: each source's fakes vs all reals", title_justify="left")
    for col in ("source", "fakes", "ROC AUC", "recall" + (f" at {cut:.3f}" if cut is not None else ""),
                "TPR at 1% FPR", "TPR at 5% FPR"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for source, s in m.get("per_source", {}).items():
        table.add_row(shown(source), fmt(s.get("n")), fmt(s.get("roc_auc")), fmt(s.get("recall")),
                      fmt(s.get("tpr_at_1pct_fpr")), fmt(s.get("tpr_at_5pct_fpr")))
    return table


def summary_table(metrics: dict, title: str = "Figures per set") -> Table:
    """One column per set, one row per figure, intervals under their value."""
    sets = metrics.get("sets", {})
    table = Table(title=title, title_justify="left", show_lines=True,
                  caption="\\[lo, hi]: bootstrap 95% interval", caption_justify="left")
    table.add_column("")
    for name, m in sets.items():
        table.add_column(f"{shown(name)}\n(eval)" if m.get("role") == "eval" else shown(name), justify="right")
    rows = [
        ("images", lambda m: fmt(m.get("n"))),
        ("accuracy", lambda m: fmt_ci(m.get("accuracy"), m.get("accuracy_ci"))),
        ("balanced accuracy", lambda m: fmt(m.get("balanced_accuracy"))),
        ("macro F1", lambda m: fmt(m.get("macro_f1"))),
    ]
    if any("roc_auc" in m for m in sets.values()):
        rows += [("ROC AUC", lambda m: fmt_ci(m.get("roc_auc"), m.get("roc_auc_ci"))),
                 ("average precision", lambda m: fmt(m.get("average_precision"))),
                 ("Brier score", lambda m: fmt(m.get("brier")))]
    if any("at_threshold" in m for m in sets.values()):
        rows += [("false-positive rate at threshold", lambda m: fmt((m.get("at_threshold") or {}).get("fpr"))),
                 ("recall at threshold", lambda m: fmt((m.get("at_threshold") or {}).get("recall"))),
                 ("accuracy at threshold", lambda m: fmt((m.get("at_threshold") or {}).get("accuracy")))]
    rows.append(("left out (no features)", lambda m: fmt(m.get("n_missing_features", 0))))
    for label, get in rows:
        table.add_row(label, *(get(m) for m in sets.values()))
    return table


def print_set(name: str, m: dict) -> None:
    """Per-class precision/recall and the confusion matrix of one set."""
    labels = m.get("labels", [])
    per = Table(title=f"{shown(name)}: per class", title_justify="left")
    for col in ("class", "precision", "recall", "F1", "support", "predicted"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for label in labels:
        c = m.get("per_class", {}).get(label, {})
        missing = label in m.get("missing_classes", [])
        per.add_row(shown(label) + (" [dim](not in set)[/dim]" if missing else ""), fmt(c.get("precision")),
                    fmt(c.get("recall")), fmt(c.get("f1")), fmt(c.get("support")), fmt(c.get("predicted")))
    cm = Table(title=f"{shown(name)}: confusion matrix", title_justify="left",
               caption="rows: true label; columns: predicted", caption_justify="left")
    cm.add_column("true \\ pred")
    for label in labels:
        cm.add_column(shown(label), justify="right")
    for label, row in zip(labels, m.get("confusion_matrix", [])):
        cm.add_row(shown(label), *(f"[bold]{v}[/bold]" if i == labels.index(label) else str(v) for i, v in enumerate(row)))
    console.print(per)
    console.print(cm)
    notes = []
    if m.get("missing_classes"):
        notes.append(f"classes absent from this set (not counted as errors): {', '.join(m['missing_classes'])}")
    if m.get("unknown_labels"):
        notes.append("labels the model does not know, left out: "
                     + ", ".join(f"{k} ({v})" for k, v in m["unknown_labels"].items()))
    if m.get("missing_features"):
        notes.append("images without features, left out: "
                     + ", ".join(f"{k}: {v}" for k, v in m["missing_features"].items()))
    for note in notes:
        console.print(f"  [yellow]{note}[/yellow]", highlight=False)


def print_run(params: dict, metrics: dict, path: Path | str, sets: Iterable[str] | None = None) -> None:
    """The run's description, its figures per set and the detail of ``sets``."""
    feats = shown("+".join(params.get("features", [])) or "images")
    console.print(f"[bold]{shown(params.get('name'))}[/bold]  {params.get('kind')} [cyan]{shown(params.get('model'))}[/cyan] "
                  f"on {feats}, {params.get('task')} ({shown(', '.join(params.get('classes', [])))}"
                  + (f"; positive class {shown(params['positive_class'])}" if params.get("positive_class") else "")
                  + ")", highlight=False)
    data = params.get("data", {})
    splits = data.get("splits") or {}
    counts = ", ".join(f"{k} {v}" for k, v in (data.get("counts") or {}).items())
    place = located(data, path)
    console.print(f"data: {shown(str(data.get('name') or place))}"
                  + (f" at {shown(str(place))}" if place is not None and data.get("name") else "")
                  + (f", layout {shown(data['layout'])}" if data.get("layout") else "")
                  + f" ({data.get('n_images')} images"
                  + (f"; {counts}" if counts else "")
                  + (f"; test held out by a stratified split, seed {splits.get('seed')}"
                     if splits.get("source") == "stratified" else "") + ")", highlight=False)
    if params.get("eval_on"):
        console.print(f"eval features: {shown('+'.join(params.get('eval_features', [])))}", highlight=False)
    if params.get("search"):
        s = params["search"]
        console.print(f"search: {s['candidates']} candidates, {s['folds']}-fold CV on train, {s['scoring']} "
                      f"{s['best_score']:.3f}, best {shown(str(s['best_params']))}", highlight=False)
    if params.get("leave_out"):
        console.print(f"left out of train and valid: the fakes of source [bold]{shown(params['leave_out'])}"
                      "[/bold], scored on test as a generator never seen", highlight=False)
    cut = params.get("threshold") or metrics.get("threshold")
    if cut and cut.get("value") is not None:
        console.print(threshold_line({**cut, "source": "run"}), highlight=False)
    console.print(summary_table(metrics))
    detail = list(sets) if sets is not None else [
        n for n, m in metrics.get("sets", {}).items() if m.get("role") in ("test", "eval")]
    for name in detail:
        if name in metrics.get("sets", {}):
            print_set(name, metrics["sets"][name])
            if metrics["sets"][name].get("per_source"):
                console.print(sources_table(name, metrics["sets"][name]))
    for n in params.get("notes", []) or []:
        console.print(f"[cyan]note:[/cyan] {shown(n)}", highlight=False)
    for w in params.get("warnings", []) or []:
        console.print(f"[yellow]warning while fitting:[/yellow] {shown(w)}", highlight=False)
    console.print(f"run folder: {shown(path)}", highlight=False)


@runs_app.callback()
@clean_errors
def runs(
    ctx: typer.Context,
    runs_dir: Path = runs_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON (same as --format json)."),
    output: str = typer.Option("table", "--format", help="table, csv or json (for scripts: every column, whole)."),
) -> None:
    """List fitted runs with their key figures (test set when there is one).

    The table folds long names onto more lines rather than cutting them;
    --format csv or json gives every column for scripts.

    Example: [bold]embedlab runs[/bold], then [bold]embedlab runs show NAME[/bold]
    """
    if ctx.invoked_subcommand is not None:
        return
    from embedlab.runs import list_runs

    if output not in ("table", "csv", "json"):
        fail(f"--format {output!r}: choose table, csv or json")
    table = list_runs(runs_dir)
    for bad in table.attrs.get("unreadable", []):  # on stderr, so that --format json stays JSON
        err_console.print(f"[yellow]not listed[/yellow]: run folder {shown(bad['folder'])}: {shown(bad['error'])}",
                          highlight=False, soft_wrap=True)
    if as_json or output == "json":
        print_json(table.to_dict(orient="records"))
        return
    if output == "csv":
        print_csv(table)
        return
    if table.empty:
        if not table.attrs.get("unreadable"):
            console.print(f"no runs in {shown(runs_dir)}; fit one with `embedlab fit DATA --model svm`",
                          highlight=False)
        return
    out = Table(title=f"Runs in {runs_dir}", title_justify="left",
                caption="figures on each run's test set; \\[lo, hi]: bootstrap 95% interval",
                caption_justify="left")
    for col in ("folder", "model", "features", "data", "n", "accuracy", "ROC AUC", "eval sets"):
        out.add_column(col, justify="right" if col in ("n", "accuracy", "ROC AUC") else "left", overflow="fold")
    for r in table.itertuples():  # the folder is what `runs show` takes; a name written inside differs only if edited
        folder = shown(r.folder) + (f"\n(named {shown(r.name)})" if r.name != r.folder else "")
        out.add_row(folder, shown(str(r.model)), shown(r.features), shown(str(r.data)), fmt(r.n), fmt_ci(r.accuracy, r.accuracy_ci),
                    fmt(r.roc_auc), ", ".join(r.eval_sets))
    console.print(out)


@runs_app.command("show")
@clean_errors
def show(
    run: str = typer.Argument(..., help="Run folder, or run name under --runs-dir."),
    runs_dir: Path = runs_option(),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Sets to detail (default: test and eval sets)."),
    as_json: bool = typer.Option(False, "--json", help="Print params and metrics as JSON."),
) -> None:
    """Print one run: what it was fitted on, its figures per set, per-class tables and confusion matrices.

    Example: [bold]embedlab runs show results/runs/real-vs-fake-encoding-svm-20250101-120000[/bold]
    """
    from embedlab.api import load_run

    r = load_run(run, runs_dir, load_model_files=False)
    if as_json:
        print_json({"params": r.params, "metrics": r.metrics})
        return
    print_run(r.params, r.metrics, r.path, sets=sets or None)
