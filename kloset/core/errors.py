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
