"""The records of the ingest queue: what a job asks for (JobSpec), where it stands (Job, JobState), one delivery
of it to a worker, a dead letter, and the queue's counts. Plain values, parsed from and written to Redis by
queue.py; the servicers, workers and the catalog read them without touching Redis."""

import json
from dataclasses import dataclass, field
from enum import StrEnum

TERMINAL_STATES = frozenset({"done", "failed", "skipped"})


class JobState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to index one submitted photo."""

    image_digest: str
    label_digest: str
    item_id: str
    filename: str
    item_ids: tuple[str, ...]
    request_id: str = ""  # the submission's x-request-id: the worker's log lines for the job carry it

    def fields(self) -> dict[str, str]:
        """The spec as stream entry fields."""
        return {
            "image": self.image_digest,
            "label": self.label_digest,
            "item_id": self.item_id,
            "filename": self.filename,
            "item_ids": json.dumps(list(self.item_ids)),
            "request_id": self.request_id,
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "JobSpec":
        """The spec back from stream entry fields."""
        return cls(
            image_digest=fields.get("image", ""),
            label_digest=fields.get("label", ""),
            item_id=fields.get("item_id", ""),
            filename=fields.get("filename", ""),
            item_ids=tuple(json.loads(fields.get("item_ids", "[]"))),
            request_id=fields.get("request_id", ""),  # absent on jobs queued before request ids
        )


@dataclass(frozen=True)
class Job:
    job_id: str
    state: JobState
    item_ids: tuple[str, ...] = ()
    error: str = ""
    attempts: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_record(cls, job_id: str, record: dict[str, str]) -> "Job":
        """A job from its record's fields (the job's Redis hash)."""
        return cls(
            job_id=job_id,
            state=JobState(record["state"]),
            item_ids=tuple(json.loads(record.get("item_ids", "[]"))),
            error=record.get("error", ""),
            attempts=int(record.get("attempts", 0)),
            created_at=float(record.get("created_at", 0)),
            updated_at=float(record.get("updated_at", 0)),
        )


@dataclass(frozen=True)
class Delivery:
    entry_id: str
    job_id: str
    spec: JobSpec
    deliveries: int = 1

    @property
    def queued_at(self) -> float:
        """Unix seconds when the entry was XADDed, by the Redis server's clock (a stream id is its milliseconds)."""
        return int(self.entry_id.split("-", 1)[0]) / 1000


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    job_id: str
    spec: JobSpec
    error: str
    failed_at: float

    @classmethod
    def from_fields(cls, entry_id: str, fields: dict[str, str]) -> "DeadLetter":
        """A dead letter from its stream entry."""
        try:
            spec = JobSpec.from_fields(fields)
        except (ValueError, TypeError):  # a letter written by an older kloset from a malformed entry
            spec = JobSpec("", "", "", "", ())
        return cls(
            entry_id=entry_id,
            job_id=fields.get("job_id", ""),
            spec=spec,
            error=fields.get("error", ""),
            failed_at=float(fields.get("failed_at", 0) or 0),
        )


@dataclass(frozen=True)
class QueueStats:
    queued: int
    pending: int
    dead_lettered: int
    consumers: dict[str, int] = field(default_factory=dict)
