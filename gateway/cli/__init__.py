"""The ``diatabase`` command line."""
