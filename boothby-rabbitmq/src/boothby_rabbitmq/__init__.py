"""The rabbitmq transport for Boothby."""
