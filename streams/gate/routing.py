"""Which partition owns a contact: murmur2 of its input key, as the SDK partitions.

The SDK (and any Java producer) puts an input record on `murmur2(key) % partitions` of its
topic; the contact's state lives in the task of that partition (issue 15 §3). A record that
arrived elsewhere (a producer with another partitioner), and the extra contacts of a record,
are forwarded to the owning partition of the internal topic.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2` (the Java client's and librdkafka's `murmur2_random`), as
    an unsigned 32-bit value."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra == 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (Java) partitioner gives a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
