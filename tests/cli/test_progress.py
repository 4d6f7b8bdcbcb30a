import io

from kloset.cli.progress import Progress


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress("indexed", 4, stream=out)
    for i in range(1, 5):
        progress.update(i)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("indexed 1/4") and lines[-1].startswith("indexed 4/4")
    assert sum(line.startswith("indexed 4/4") for line in lines) == 1  # the last figure once
    assert "/s" in lines[-1] and "ETA" in lines[-1] and "\r" not in out.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_redrawn_bar_on_a_terminal():
    out = Terminal()
    progress = Progress("submitted", 2, stream=out)
    progress.update(1)
    progress.update(2)
    progress.close()
    assert out.getvalue().startswith("\r[") and "submitted 2/2" in out.getvalue() and out.getvalue().endswith("\n")
