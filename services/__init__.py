"""gRPC transport: thin servicers over the core (decode protobuf, call the core, encode the answer)."""
