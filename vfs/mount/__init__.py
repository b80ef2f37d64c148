"""Mounts seen from outside the daemon: what a SOURCE names and how a daemon is
started, the kernel's mount table and dvfs's mount records, and the control
socket client behind ``dvfs snapshot MNT`` and ``dvfs status MNT``."""
