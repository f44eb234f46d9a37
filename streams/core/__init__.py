"""Pure decision core: no I/O, no clock, no streaming or storage libraries."""
