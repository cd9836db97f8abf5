"""Plugins that ship with boothby-core: the embedded transport and the stdout log sink."""
