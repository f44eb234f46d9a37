"""sendgate: real-time consent and anti-spam gate for outbound messages."""

__version__ = "0.1.0"
