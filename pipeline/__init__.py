"""synthgen: verified synthetic training data from a teacher LLM, as an Apache Beam pipeline."""

__version__ = "0.1.0"
