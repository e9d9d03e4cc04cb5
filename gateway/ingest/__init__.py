"""The ingester: MQTT in, validate, normalise, link, batch, write, then acknowledge."""
