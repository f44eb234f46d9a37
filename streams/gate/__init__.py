"""The gate: decode, admit, step the core, encode outputs -- no Kafka, no Redis."""
