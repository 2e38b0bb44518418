"""User-controlled strings reach the terminal as written: no markup, no control sequences."""

from __future__ import annotations

from rich.console import Console

from embedlab_cli.terminal import printable, shown


def rendered(text: str) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(text, highlight=False)
    return console.export_text().rstrip("\n")


def test_markup_in_a_name_prints_as_written():
    for name in ("[blink red]BLINK[reverse].jpg", "photos [/x].jpg", "photos [", "[/]", "a\\", "x\\[y]"):
        assert rendered(f"[bold]{shown(name)}[/bold] [red]{shown(name)}[/]") == f"{name} {name}"


def test_control_characters_are_shown_escaped():
    name = "a\x1b[2J\x07b\n\u202ec.jpg"
    out = rendered(shown(name))
    assert "\x1b" not in out and "\x07" not in out and "\n" not in out and "\u202e" not in out
    assert out == printable(name) == "a\\x1b[2J\\x07b\\n\\u202ec.jpg"


def test_printable_text_is_unchanged():
    assert printable("Straße/émotion 1.jpg") == "Straße/émotion 1.jpg"


def test_fit_prints_labels_as_written(tmp_path):
    """Class names come from folder names: markup in them prints literally, control characters escaped."""
    from PIL import Image
    from typer.testing import CliRunner

    from embedlab_cli.main import app

    labels = ["[red]calm", "tense\x1b[2J"]
    for k, label in enumerate(labels):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * k + i, 100, 0)).save(tmp_path / "data" / label / f"{i}.png")
    result = CliRunner().invoke(app, ["fit", str(tmp_path / "data"), "-f", "pixels:4", "-m", "logreg", "-w", "0",
                                      "--cache-dir", str(tmp_path / "c"), "--runs-dir", str(tmp_path / "r")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[red]calm" in result.output and "\x1b" not in result.output
    assert printable(labels[1]) in result.output
