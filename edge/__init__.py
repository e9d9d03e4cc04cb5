"""The home-hub agent: device tasks, durable outbox, MQTT publisher, hub telemetry."""
