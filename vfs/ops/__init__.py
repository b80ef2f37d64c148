"""The commands as library functions (add/commit, checkout, browse, diff, du,
fsck, gc, merge, git integration, on-demand fetching), which the CLI, the Python
API and the daemon call. Built on vfs.repo, vfs.worktree and vfs.remote."""
