"""A plugin whose import fails, to check that Boothby reports it and keeps the other plugins."""

raise ImportError("this plugin is broken on purpose")
