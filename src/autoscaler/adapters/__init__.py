"""One adapter per outside system, each implementing a port."""
