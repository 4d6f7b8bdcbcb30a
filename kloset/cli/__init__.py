"""The `kloset` command: a gRPC client of the services, plus `serve`, `train` and `sample`."""
