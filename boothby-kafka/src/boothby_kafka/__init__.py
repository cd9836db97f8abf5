"""The kafka transport for Boothby."""
