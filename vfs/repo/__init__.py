"""A repository on disk: its layout and format, settings, refs moved by
compare-and-swap, history, the audit log, and the one commit protocol that every
writer of versions calls. Built on vfs.store."""
