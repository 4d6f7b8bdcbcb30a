import io

from kloset.client import progress as progress_module
from kloset.client.progress import Progress


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress("indexed", 4, stream=out)
    for i in range(1, 5):
        progress.update(i)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("indexed 0/4") and lines[-1].startswith("indexed 4/4")
    assert sum(line.startswith("indexed 4/4") for line in lines) == 1  # the last figure once
    assert "/s" in lines[-1] and "ETA" in lines[-1] and "\r" not in out.getvalue()


def test_plain_lines_are_at_most_one_per_interval(monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 3600.0)
    out = io.StringIO()
    progress = Progress("indexed", 1000, stream=out)
    for i in range(1, 1001):
        progress.update(i)
    progress.close()
    assert [line.split()[1] for line in out.getvalue().splitlines()] == ["0/1000", "1000/1000"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_redrawn_bar_on_a_terminal():
    out = Terminal()
    progress = Progress("submitted", 2, stream=out)
    progress.update(1)
    progress.update(2)
    progress.close()
    text = out.getvalue()
    assert text.startswith("\r") and "submitted" in text and "2/2" in text and text.endswith("\n")


def test_nothing_when_disabled_or_empty():
    for progress in (Progress("x", 5, stream=(out := io.StringIO()), enabled=False), Progress("x", 0, stream=out)):
        progress.update(3)
        progress.close()
    assert out.getvalue() == ""
