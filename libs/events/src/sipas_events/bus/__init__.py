"""Transports: JetStream (real) and in-memory, behind one contract."""
