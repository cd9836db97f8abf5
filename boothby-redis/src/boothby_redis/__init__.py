"""The redis transport for Boothby."""
