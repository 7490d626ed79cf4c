"""Kafka: the bus and its consuming rules (`bus`), the transactional publisher, the
projection watermark and the dead-letter topics."""
