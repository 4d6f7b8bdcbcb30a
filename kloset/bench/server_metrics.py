"""A benchmarked server's own Prometheus metrics (KLOSET_METRICS_PORT), read over HTTP: what its code measured,
so a benchmark reports where the time went without timing anything itself."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# (sample name, sorted label pairs) -> value, e.g. ("kloset_store_seconds_sum", (("operation", "upsert"),))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, timeout_s: float = 10.0) -> Samples:
    """Every sample the server's /metrics exposes now."""
    with urllib.request.urlopen(url, timeout=timeout_s) as answer:
        text = answer.read().decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much one sample grew between two scrapes (0 where the server never recorded it)."""
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)
