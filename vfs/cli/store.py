"""``dvfs fsck``, ``gc``, ``store prune``, ``config`` and ``du``: the local store."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

import click

from vfs.cli.options import AS_JSON, DvfsCommand, DvfsGroup
from vfs.cli.output import (
    count,
    emit_json,
    human,
    keep_within_max_size,
    quoted,
    repo_here,
    warn,
    workers,
)
from vfs.errors import UsageError
from vfs.ops.store_limit import parse_store_size
from vfs.quoting import escape_text, quote_given, shell_word

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


@click.command(cls=DvfsCommand, name="fsck")
@click.option(
    "--repair",
    is_flag=True,
    help="Write unreadable refs back as the audit log last recorded them, drop damaged "
    "objects (keeping what verifies) and store again what the working tree still holds.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--remote",
    "remote_name",
    metavar="[NAME]",
    is_flag=False,
    flag_value="\0",  # --remote alone (no argument holds a NUL): the default remote
    help="Check a remote in place instead (default: the default remote); writes nothing.",
)
@click.option(
    "--data",
    is_flag=True,
    help="With --remote: read back every pack and verify each object (downloads them all).",
)
@click.option(
    "--digests",
    is_flag=True,
    help="Also read every file of several chunks whole, in order, and name each version "
    "holding one whose bytes are not the digest (`hash`) it records.",
)
def fsck_cmd(
    repair: bool, as_json: bool, remote_name: str | None, data: bool, digests: bool
) -> None:
    """Verify every reachable object's hash and every reference.

    --digests also reads every file of several chunks whole, in order, and names each
    version holding one whose bytes are not the digest (`hash`) it records (a forged
    or damaged record); each distinct file is read apart, so it costs more than the
    default check where versions hold large files changed a little each.

    With --remote: check that every branch and tag of the remote names a version its
    index holds, with every version, tree and chunk below it, and that every pack the
    index names is there and long enough; --data also reads every pack back and
    verifies each object; --digests downloads every file of several chunks whole and
    checks it against its digest. Nothing is written, on the remote or here.

    \b
    Examples:
      dvfs fsck
      dvfs fsck --repair
      dvfs fsck --digests
      dvfs fsck --json
      dvfs fsck --remote origin
      dvfs fsck --remote origin --data
      dvfs fsck --remote origin --digests
    """
    from vfs.ops.fsck import fsck as run_fsck

    if remote_name is not None:
        if repair:
            raise UsageError(
                "--repair mends this repository, not a remote: `dvfs fsck --remote` only checks"
            )
        _remote_fsck(None if remote_name == "\0" else remote_name, data, digests, as_json)
        return
    if data:
        raise UsageError("--data goes with --remote [NAME] (a local fsck always reads the data)")
    repo = repo_here()
    with workers() as w:
        r = run_fsck(repo, w, repair=repair, digests=digests)
    if as_json:
        emit_json(r.as_json())
    else:
        for p in r.repaired:
            click.echo(f"repaired: {escape_text(p)}")
        for p in r.problems:
            click.echo(f"problem: {escape_text(p)}")
        if r.temporaries:
            click.echo(f"removed {r.temporaries} temporary file(s) of an interrupted write")
        if r.remote_only:
            click.echo(
                f"{r.remote_only} chunk(s) are not stored here (never downloaded, or pruned): "
                "a remote's index, as last read, lists them; commands fetch them when needed"
            )
        for name, n in r.held_back.items():
            click.echo(
                f"{n} chunk(s) are not stored here (never downloaded, or pruned) and are held "
                f"only at remote {quoted(name)}'s old place: commands that need them refuse "
                f"until it is added as another remote and fetched, or {quoted(name)}'s URL is "
                "set back (the warning above names it and what to run)"
            )
        state = "no problems" if r.clean else count(len(r.problems), "problem")
        click.echo(
            f"checked {count(r.versions, 'version')}, {count(r.trees, 'tree')}, "
            f"{count(r.chunks, 'chunk')} ({human(r.bytes)}): {state}"
        )
        if r.repairable and not repair:
            click.echo(
                "`dvfs fsck --repair` mends what it can: refs as the audit log last "
                "recorded them, damaged copies dropped, data the working tree still holds "
                "stored again"
            )
    if not r.clean:
        sys.exit(1)


def _remote_fsck(name: str | None, data: bool, digests: bool, as_json: bool) -> None:
    """``dvfs fsck --remote [NAME] [--data] [--digests]``."""
    from vfs.remote.check import fsck_remote
    from vfs.remote.config import get_remote

    repo = repo_here()
    spec = get_remote(repo, name, record=False)
    r = fsck_remote(repo, spec, data=data, digests=digests)
    if as_json:
        emit_json(r.as_json())
        if not r.clean:
            sys.exit(1)
        return
    for w in r.warnings:
        warn(w)
    for p in r.problems:
        click.echo(f"problem: {escape_text(p)}")
    state = "no problems" if r.clean else count(len(r.problems), "problem")
    click.echo(
        f"{quoted(spec.name)}: checked {r.branches:,} branch{'es' if r.branches != 1 else ''}, "
        f"{count(r.tags, 'tag')}, {count(r.versions, 'version')}, {count(r.trees, 'tree')}, "
        f"{count(r.chunks, 'chunk')}; {count(r.packs, 'pack')} ({human(r.pack_bytes)}) in "
        f"{count(r.segments, 'index segment')}: {state}"
    )
    if data:
        click.echo(f"read back {count(r.objects_verified, 'object')} ({human(r.bytes_verified)})")
    if digests:
        click.echo(f"read {count(r.files_read_whole, 'file')} of several chunks whole")
    if r.unindexed_packs:
        click.echo(
            f"{count(r.unindexed_packs, 'pack')} that no index segment names (interrupted "
            f"pushes, or one under way): `dvfs gc --remote {shell_word(spec.name)}` frees "
            "them once they are older than its grace"
        )
    if not r.clean:
        sys.exit(1)


@click.command(cls=DvfsCommand, name="gc")
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be freed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--remote", "remote_name", metavar="NAME", help="Collect a remote's packs instead.")
@click.option(
    "--grace",
    metavar="DURATION",
    help="With --remote: how long a pack stays condemned before it is deleted "
    "(default 24h; 0 deletes at once, unsafe while anyone pushes).",
)
def gc_cmd(dry_run: bool, as_json: bool, remote_name: str | None, grace: str | None) -> None:
    """Free the space of objects no branch, tag, mount or run cache entry reaches.

    Packs with under half of their bytes alive are rewritten, and small packs
    (under 1 MiB, once there are 16) merged. Waits for the repository lock; safe
    to interrupt at any moment.

    With --remote NAME: packs of the remote that no remote branch or tag reaches are
    condemned, and deleted by a later run once --grace has passed; the remote's small
    packs (under 1 MiB, once there are 16: one a push of a few small files) are merged
    into few, with one index segment, and deleted likewise (safe while others push or
    clone; see docs/architecture.md, "Remote gc").

    \b
    Examples:
      dvfs gc --dry-run
      dvfs gc --json
      dvfs gc --remote origin
      dvfs gc --remote origin --grace 0
    """
    from vfs.ops.gc import gc as run_gc

    if remote_name is not None:
        _remote_gc(remote_name, grace, dry_run, as_json)
        return
    if grace is not None:
        raise UsageError("--grace applies to a remote gc: add --remote NAME")
    r = run_gc(repo_here(), dry_run=dry_run)
    if as_json:
        emit_json(r.as_json())
        sys.exit(1 if r.problems else 0)
    for p in r.problems:
        click.echo(f"problem: {escape_text(p)}")
    verb = "would free" if dry_run else "freed"
    click.echo(
        f"{verb} {human(r.freed)} ({human(r.bytes_before)} -> {human(r.bytes_after)}): "
        f"{r.dead_objects} unreachable object(s); {r.packs_deleted} of {r.packs_before} "
        f"pack(s) {'to delete' if dry_run else 'deleted'}, {r.packs_rewritten} of them "
        f"rewritten ({human(r.bytes_copied)} of live objects copied); kept {r.live_objects} "
        f"object(s) reachable from {r.roots} root(s)"
    )
    if r.unconfigured_versions:
        gone = sorted({copy.partition("/")[0] for copy in r.unconfigured})
        click.echo(
            f"kept {r.unconfigured_versions} version(s) that only copies of remote(s) "
            f"{', '.join(quoted(g) for g in gone)} hold, which no settings name any more "
            f"(`dvfs remote remove {shell_word(gone[0]) if len(gone) == 1 else 'NAME'}` "
            "deletes those copies, and the next gc frees what only they held)"
        )
    for name, seq in r.missing_refs:
        click.echo(
            f"kept what {quoted(name)} holds: its file is gone, though the audit log last "
            f"recorded it (entry {seq}); `dvfs fsck --repair` writes it back (then `dvfs "
            f"{name.partition(' ')[0]} -d {shell_word(name.partition(' ')[2])}` deletes it "
            "for good, if that was meant)"
        )
    if r.problems:
        sys.exit(1)


def parse_duration(text: str, what: str) -> float:
    """Seconds in ``90s``, ``30m``, ``24h``, ``7d`` or a plain number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if m is None:
        raise UsageError(
            f"{what} {quote_given(text)} is not a duration: write e.g. 90s, 30m, 24h or 7d"
        )
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _remote_gc(name: str, grace_text: str | None, dry_run: bool, as_json: bool) -> None:
    """``dvfs gc --remote NAME``."""
    from vfs.remote.config import get_remote
    from vfs.remote.gc import DEFAULT_GRACE, gc_remote
    from vfs.remote.manifests import PUSH_WINDOW

    grace = DEFAULT_GRACE if grace_text is None else parse_duration(grace_text, "--grace")
    repo = repo_here()
    spec = get_remote(repo, name)
    if grace < PUSH_WINDOW:
        warn(
            f"--grace {grace_text} is shorter than the longest a push may take "
            f"({PUSH_WINDOW / 3600:.0f} h): a push running now may lose packs it relies on; "
            "use it only when nobody pushes"
        )
    r = gc_remote(repo, spec, grace=grace, dry_run=dry_run)
    if as_json:
        emit_json(r.as_json())
        return
    for w in r.warnings:
        warn(w)
    verb, condemn = ("would delete", "would condemn") if dry_run else ("deleted", "condemned")
    # with no grace, the merged small packs are deleted too (they are not dead packs)
    gone = r.merged_packs if grace == 0 else 0
    click.echo(
        f"{name}: {verb} {r.deleted_packs} pack(s) ({human(r.deleted_bytes)}); "
        f"{condemn} {r.condemned_packs} pack(s) ({human(r.condemned_bytes)}), "
        f"{r.pending_packs} condemned earlier and not due yet, {r.pardoned_packs} pardoned; "
        f"kept {r.packs - r.dead_packs - gone} of {r.packs} pack(s), {r.live_objects} object(s) "
        f"reachable from {r.refs} ref(s)"
    )
    if r.merged_packs and dry_run:
        click.echo(f"would merge {r.merged_packs} small pack(s) ({human(r.merged_bytes)})")
    elif r.merged_packs:
        click.echo(
            f"merged {r.merged_packs} small pack(s) ({human(r.merged_bytes)}) into "
            f"{r.merged_into} ({human(r.merged_into_bytes)}); index segments: "
            f"{r.segments_replaced} -> {r.segments_written}"
        )
    elif r.segments_written and r.segments_replaced > r.segments_written:
        click.echo(f"index segments: {r.segments_replaced} -> {r.segments_written}")
    if r.temporaries:
        click.echo(
            f"removed {r.temporaries} file(s) ({human(r.temporary_bytes)}) that interrupted "
            "pushes left half-written"
        )
    if (r.condemned_packs or r.merged_packs) and grace > 0 and not dry_run:
        which = ["condemned"] * bool(r.condemned_packs) + ["merged"] * bool(r.merged_packs)
        click.echo(
            f"the {' and '.join(which)} packs are deleted by a `dvfs gc --remote {name}` run "
            f"{grace_text or '24h'} from now or later"
        )


@click.group(cls=DvfsGroup, name="store")
def store_group() -> None:
    """The local store as a cache of the default remote: drop data it holds.

    \b
    Examples:
      dvfs store prune --dry-run
      dvfs store prune --keep-last 3 --keep-tags
    """


@store_group.command(name="prune")
@click.option(
    "--keep-last",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="Keep the data of the last N versions of the current branch (at least 1).",
)
@click.option("--keep-tags", is_flag=True, help="Keep the data of every tagged version.")
@click.option("--keep-branches", is_flag=True, help="Keep the data of every branch's tip.")
@click.option(
    "--pushed-only",
    is_flag=True,
    help="Drop only the data of versions on the remote's history.",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Read the data to drop back from the remote and check it first (downloads it); "
    "what does not verify is kept.",
)
@click.option(
    "--remote", "remote_name", metavar="NAME", help="The remote (default: the default one)."
)
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be dropped; change nothing.")
@AS_JSON
def store_prune(
    keep_last: int,
    keep_tags: bool,
    keep_branches: bool,
    pushed_only: bool,
    verify: bool,
    remote_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Drop the file data of old versions that the remote holds (checked now).

    Versions stay in `log` and `show`; their files come back when a command needs
    them (checkout, restore, cat) or through a mount. The remote's index and
    listing say what it holds; --verify reads that data back and checks it before
    dropping anything, for a remote that is to hold its only copy.

    \b
    Examples:
      dvfs store prune
      dvfs store prune --keep-last 3 --keep-tags --dry-run
      dvfs store prune --verify
    """  # fmt: skip
    from vfs.ops.prune import prune
    from vfs.remote.config import get_remote

    repo = repo_here()
    spec = get_remote(repo, remote_name)
    r = prune(
        repo, spec, keep_last=keep_last, keep_tags=keep_tags, keep_branches=keep_branches,
        pushed_only=pushed_only, verify=verify, dry_run=dry_run,
    )  # fmt: skip
    if as_json:
        emit_json(r.as_json())
        sys.exit(1 if r.problems else 0)
    for p in r.problems:
        click.echo(f"problem: {escape_text(p)}")
    if verify:
        click.echo(f"verified {r.verified} chunk(s) ({human(r.verified_bytes)}) on {spec.name}")
    verb = "would drop" if dry_run else "dropped"
    click.echo(
        f"{verb} {r.chunks} chunk(s) ({human(r.bytes)}) of {r.pruned_versions} version(s) "
        f"that {spec.name} holds; kept the data of {r.kept_versions} version(s); store "
        f"{human(r.gc.bytes_before)} -> {human(r.gc.bytes_after)}"
    )
    if r.problems:
        sys.exit(1)


CONFIG_KEYS = ("store.max-size",)


def complete_keys(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The settings starting so (``dvfs completion``)."""
    from click.shell_completion import CompletionItem  # only when completing

    return [CompletionItem(k) for k in CONFIG_KEYS if k.startswith(incomplete)]


@click.command(cls=DvfsCommand, name="config")
@click.argument("key", metavar="[KEY", required=False, shell_complete=complete_keys)
@click.argument("value", metavar="[VALUE]]", required=False)
@click.option("--unset", is_flag=True, help="Remove the setting.")
def config_cmd(key: str | None, value: str | None, unset: bool) -> None:
    """Show or set a setting of this clone (kept in .dvfs/config); without KEY, list
    the settings that are set.

    store.max-size SIZE: after add, commit and pull, the data of the least recently
    used versions that the default remote holds is dropped until the store fits
    (data the remote lacks is never dropped; `dvfs store prune` does it by hand).

    \b
    Examples:
      dvfs config store.max-size 50G
      dvfs config store.max-size
      dvfs config --unset store.max-size
      dvfs config
    """
    if key is None:
        if unset:
            raise UsageError("--unset needs the KEY of the setting to remove")
        cfg = repo_here().config()
        set_now = [(k, cfg[k]) for k in CONFIG_KEYS if isinstance(cfg.get(k), str)]
        for k, v in set_now:
            click.echo(f"{k} {escape_text(v)}")
        if not set_now:
            click.echo(f"no setting is set (known: {', '.join(CONFIG_KEYS)})", err=True)
        return
    if key not in CONFIG_KEYS:
        raise UsageError(f"unknown setting {quote_given(key)} (known: {', '.join(CONFIG_KEYS)})")
    repo = repo_here()
    if value is None and not unset:
        got = repo.config().get(key)
        if got is None:
            raise UsageError(f"{key} is not set")
        click.echo(got)
        return
    if value is not None and unset:
        raise UsageError("give a value or --unset, not both")
    if value is not None:
        parse_store_size(value, key)
    with repo.locked():
        cfg = repo.config()
        if unset:
            cfg.pop(key, None)
        else:
            cfg[key] = (value or "").strip()
        repo.save_config(cfg)
    if not unset:
        keep_within_max_size(repo)


@click.command(cls=DvfsCommand, name="du")
@click.argument("revs", nargs=-1, metavar="[REV...]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def du_cmd(revs: tuple[str, ...], as_json: bool) -> None:
    """Sizes of versions: logical, after dedup, stored; what each alone costs.

    Without REV: every version a branch, tag or remote-tracking branch reaches.
    "unique" is what dropping that version alone would free (`dvfs gc`).

    \b
    Examples:
      dvfs du
      dvfs du v3 v4 --json
    """
    from vfs.cli.history import is_path
    from vfs.cli.targets import REVISION_LIKE, is_revision
    from vfs.ops.du import usage

    repo = repo_here()
    for r in revs:  # `dvfs du data`, as Unix du is used: a path, not a revision
        if not REVISION_LIKE.match(r) and not is_revision(repo, r) and is_path(repo, r):
            raise UsageError(
                f"{quoted(r)} is a path, and dvfs du sizes versions: "
                f"`dvfs ls -r {shell_word(r)}` lists the files at or below it with their sizes"
            )
    u = usage(repo, list(revs))
    if as_json:
        emit_json(u.as_json())
        return
    click.echo(f"{count(len(u.versions), 'version')}")
    click.echo(f"  logical   {human(u.logical):>10}  every file of every version")
    click.echo(f"  distinct  {human(u.distinct):>10}  after dedup ({u.dedup_ratio:.2f}x)")
    click.echo(
        f"  stored    {human(u.stored):>10}  in the local store "
        f"(compression {u.compression_ratio:.2f}x)"
    )
    if u.not_local:
        click.echo(f"  not local {human(u.not_local):>10}  held by a remote only")
    click.echo("unique to each version (what dropping it alone would free):")
    for v in u.versions:
        click.echo(f"  {v.label:>6} {v.oid.hex()[:10]}  {human(v.unique):>10}")
    if u.biggest:
        click.echo("biggest files:")
        for size, path, label, oid in u.biggest:
            click.echo(f"  {human(size):>10}  {quoted(path)}  ({label} {oid.hex()[:10]})")
