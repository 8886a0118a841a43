"""fitiq_rt: the real-time meal-log backend."""

__version__ = "0.1.0"
