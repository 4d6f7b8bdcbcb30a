from kloset.core.errors import quoted


def test_short_values_are_their_repr():
    assert quoted("0001/top") == "'0001/top'"
    assert quoted(42) == "42"
    assert quoted(None) == "None"
    assert quoted("a" * 58) == repr("a" * 58)  # 60 characters with the quotes


def test_long_text_is_cut_and_says_how_long_it_was():
    text = quoted("x" * 20_000)
    assert text == repr("x" * 60)[:60] + "… (20000 characters)"
    assert len(text) < 100


def test_bytes_say_bytes_and_other_values_the_length_of_their_repr():
    assert quoted(b"\0" * 1000, limit=10) == "b'\\x00\\x00… (1000 bytes)"
    values = list(range(100))
    assert quoted(values, limit=12) == repr(values)[:12] + f"… ({len(repr(values))} characters)"


def test_escapes_count_towards_the_limit():
    """A repr of escapes is longer than its value: the cut applies to what is shown."""
    text = quoted("\ud800" * 20, limit=30)  # a lone surrogate: six characters of repr each, and sendable
    assert text.startswith("'\\ud800") and text.endswith("… (20 characters)")
    assert len(text) == 30 + len("… (20 characters)")
    text.encode("utf-8")


def test_values_without_a_usable_repr_are_named_by_their_type():
    nested: list = []
    for _ in range(100_000):
        nested = [nested]  # repr raises RecursionError
    assert quoted(nested) == "<list>"

    class Hostile:
        def __repr__(self):
            raise ValueError("no")

    assert quoted(Hostile()) == "<Hostile>"
