"""What `tether run` prints: apps' lines behind a colored `[appid]`, and its own progress.

An app's stdout goes to stdout and its stderr to stderr, so `tether run -- cmd | jq` still
reads only what the app printed. Progress goes to stderr for the same reason. Lines are printed
as plain text (no markup, no emoji codes, no wrapping): they are the app's, byte for byte apart
from the prefix.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

# Colors that read on dark and light terminals; red is kept for errors.
_PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")


class Output:
    def __init__(self, out: Console | None = None, err: Console | None = None) -> None:
        self.out = out or Console(highlight=False, soft_wrap=True, emoji=False, markup=False)
        self.err = err or Console(
            stderr=True, highlight=False, soft_wrap=True, emoji=False, markup=False
        )
        self._styles: dict[str, str] = {}
        self._width = len("[tether]")

    def add_source(self, name: str) -> None:
        """Give `name` a color and widen the prefix column to fit it."""
        if name not in self._styles:
            self._styles[name] = _PALETTE[len(self._styles) % len(_PALETTE)]
        self._width = max(self._width, len(name) + 2)

    def line(self, name: str, text: str, stderr: bool = False) -> None:
        """One line an app (or the dev server) printed."""
        prefix = f"[{name}]".ljust(self._width)
        line = Text.assemble((prefix, self._styles.get(name, "dim")), " ", text)
        (self.err if stderr else self.out).print(line)

    def info(self, message: str, detail: str = "") -> None:
        self._say(message, detail, "")

    def ok(self, message: str, detail: str = "") -> None:
        self._say(message, detail, "green")

    def warn(self, message: str) -> None:
        self._say(f"warning: {message}", "", "yellow")

    def error(self, message: str) -> None:
        self._say(f"error: {message}", "", "bold red")

    def _say(self, message: str, detail: str, style: str) -> None:
        prefix = "[tether]".ljust(self._width)
        text = Text.assemble((prefix, "bold"), " ", (message, style))
        if detail:
            text.append(f" {detail}", style="dim")
        self.err.print(text)
