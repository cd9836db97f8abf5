"""A third-party Boothby plugin for the test suite."""
