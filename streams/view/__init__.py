"""The read side: the Redis status view, its changelog follower and the HTTP lookups."""
