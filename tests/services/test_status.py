from kloset.services.status import MAX_DETAILS_CHARS, _wire_bytes, short_details


def test_ordinary_messages_are_left_alone():
    message = "unknown color 'plaid'; expected one of white, black or a K-Fashion name"
    assert short_details(message) == message


def test_long_messages_are_cut_and_say_so():
    details = short_details("item id " + "x" * 20_000)
    assert len(details) <= MAX_DETAILS_CHARS
    assert details.startswith("item id xxx") and details.endswith("(20008 characters, cut)")


def test_non_ascii_messages_are_cut_to_what_the_trailers_hold():
    """grpc-message is percent-encoded UTF-8: 1,000 Korean characters would be 9,000 bytes on the wire."""
    details = short_details("라벨" * 2_000)
    assert len(details) < MAX_DETAILS_CHARS and _wire_bytes(details) <= 4_000
    assert details.startswith("라벨라벨")


def test_lone_surrogates_do_not_stop_the_message_being_sent():
    details = short_details("bad \ud800 name")
    details.encode("utf-8")
    assert details == "bad \\ud800 name"
