"""Wire formats of the Kafka topics: Avro (single-object or Confluent framing) and JSON.

Kept import-light: import `streams.codecs.registry.get_codec` (or the modules) directly.
"""
