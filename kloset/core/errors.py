"""The few error types the core raises; services map each to one gRPC status code in one place."""


class KlosetError(Exception):
    """Base of every error kloset raises on purpose."""


class InvalidInput(KlosetError):
    """The caller sent something kloset cannot use; retrying the same input will fail again."""


class NotFound(KlosetError):
    """A job or catalog item that does not exist."""


class Overloaded(KlosetError):
    """kloset is alive but will not take more work now; the caller should back off and retry."""


class Unavailable(KlosetError):
    """A dependency (Redis, Qdrant, the attribute service) did not answer; retrying later may work."""


class ModelError(KlosetError):
    """Model weights are missing, corrupt, or do not match the code: a start-up error."""


def quoted(value: object, limit: int = 60) -> str:
    """repr(value) for an error message, cut to `limit` characters when longer, saying how long the value was.

    Messages travel in gRPC trailers (about 8 KB in all), so whatever a caller sent is quoted only up to a prefix.
    N in "… (N characters)" is the length of the value itself for text (bytes: "N bytes"), else of its repr.
    """
    if isinstance(value, str | bytes):  # repr the prefix only: the value may be megabytes long
        text = repr(value[:limit])
        size = f"{len(value)} {'characters' if isinstance(value, str) else 'bytes'}"
        longer = len(value) > limit or len(text) > limit
    else:
        try:
            text = repr(value)
        except Exception:  # deeply nested containers raise RecursionError; a hostile __repr__ anything
            text = f"<{type(value).__name__}>"
        size = f"{len(text)} characters"
        longer = len(text) > limit
    return f"{text[:limit]}… ({size})" if longer else text


class DeadlineExceeded(KlosetError):
    """The caller's deadline passed: nobody waits for the answer any more, so the work behind it stops."""
