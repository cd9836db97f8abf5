"""The Python worker process; it needs only the standard library and fastavro, never boothby itself."""
