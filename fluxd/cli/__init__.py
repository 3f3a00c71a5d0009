"""The ``fluxd`` command: the daemon (``run``) and the tools around it.

Besides ``run`` and ``gen``, the commands mirror the ``flux`` CLI against the
objects fluxd serves: ``get``, ``reconcile``, ``suspend``, ``resume``,
``build``, ``diff``, ``events``, ``export``, ``create``, ``tree``, ``trace``,
``check`` and ``version``. User errors print
one readable ``✗`` line and exit non-zero; no tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, TypeAlias

import anyio

from fluxd import settings as settings_module
from fluxd.api.duration import parse_duration
from fluxd.api.errors import InvalidDuration
from fluxd.cli import kinds
from fluxd.cli.failures import CommandError
from fluxd.cli.session import DEFAULT_NAMESPACE, DEFAULT_TIMEOUT_SECONDS, Session, execute
from fluxd.cli.terminal import Terminal
from fluxd.settings import DEFAULT_LEASE_NAME, SettingsError

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    # argparse's sub-parser action is generic to type checkers only, not at run time.
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _version() -> str:
    try:
        return version("fluxd")
    except PackageNotFoundError:
        return "unknown"


# -- run / gen / version ------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = settings_module.load(flags=vars(args), config_file=args.config)
    except SettingsError as error:
        print(f"fluxd: {error}", file=sys.stderr)
        return 2
    from fluxd import logs, metrics
    from fluxd.controllers.assembly import assemble
    from fluxd.controllers.manager import Daemon
    from fluxd.kube.client import ConfigError

    logs.configure(level=settings.log_level, fmt=settings.log_format)
    metrics.count_by_namespace(settings.metrics_count_by_namespace)
    daemon = Daemon(settings, assemble=assemble)

    async def run() -> int:
        if settings.debug_slow_callback > 0:
            from fluxd.aio.loopwatch import watch_slow_callbacks

            watch_slow_callbacks(threshold=settings.debug_slow_callback)
        return await daemon.run()

    try:
        return anyio.run(run)
    except ConfigError as error:
        print(f"fluxd: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _cmd_gen_crds(args: argparse.Namespace) -> int:
    from fluxd.api.crds import render_crds

    sys.stdout.write(render_crds())
    return 0


def _cmd_gen_config(args: argparse.Namespace) -> int:
    sys.stdout.write(settings_module.render_example())
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"fluxd {_version()}")
    if not args.server:
        return 0

    async def server(session: Session, _: argparse.Namespace) -> int:
        answer = await session.kube.server_version()
        session.terminal.data(f"kubernetes {answer.get('gitVersion', 'unknown')}\n")
        return 0

    return execute(args, server)


# -- the cluster commands -----------------------------------------------------------


def _cmd_get(args: argparse.Namespace) -> int:
    from fluxd.cli.listing import get

    return execute(args, get)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from fluxd.cli.reconciling import reconcile

    return execute(args, reconcile)


def _cmd_suspend(args: argparse.Namespace) -> int:
    from fluxd.cli.reconciling import suspend

    return execute(args, suspend)


def _cmd_resume(args: argparse.Namespace) -> int:
    from fluxd.cli.reconciling import resume

    return execute(args, resume)


def _cmd_build(args: argparse.Namespace) -> int:
    from fluxd.cli.building import build_command, build_offline

    if not args.dry_run:
        return execute(args, build_command)
    terminal = Terminal()
    try:
        return anyio.run(build_offline, args, terminal)
    except CommandError as error:
        terminal.failure(error.message)
        return error.exit_code


def _cmd_diff(args: argparse.Namespace) -> int:
    from fluxd.cli.building import diff_command

    return execute(args, diff_command)


def _cmd_events(args: argparse.Namespace) -> int:
    from fluxd.cli.events import events

    return execute(args, events)


def _cmd_export(args: argparse.Namespace) -> int:
    from fluxd.cli.exporting import export

    return execute(args, export)


def _cmd_create(args: argparse.Namespace) -> int:
    from fluxd.cli.creating import create, create_secret

    if args.kind is None:
        return execute(args, create_secret) if not args.export else _offline_export(args)
    if args.export:
        return _offline_export(args)
    return execute(args, create)


def _offline_export(args: argparse.Namespace) -> int:
    """``create --export`` prints the object and needs no cluster, as with flux."""
    from fluxd.cli.creating import check_name, git_secret, render_created
    from fluxd.cli.exporting import clean, render

    terminal = Terminal()
    try:
        if args.kind is None:
            check_name(args.name)
            document = git_secret(args, args.namespace)
        else:
            document = clean(render_created(args.kind, args, args.namespace))
    except CommandError as error:
        terminal.failure(error.message)
        return error.exit_code
    terminal.data(render([document]))
    return 0


def _cmd_tree(args: argparse.Namespace) -> int:
    from fluxd.cli.tracing import tree

    return execute(args, tree)


def _cmd_trace(args: argparse.Namespace) -> int:
    from fluxd.cli.tracing import trace

    return execute(args, trace)


def _cmd_check(args: argparse.Namespace) -> int:
    from fluxd.cli.checks import check

    return execute(args, check)


# -- the parser ---------------------------------------------------------------------


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except InvalidDuration as error:
        raise argparse.ArgumentTypeError(
            f"invalid duration '{text}': use e.g. 30s, 5m, 1h"
        ) from error


def _global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The flags every cluster command takes, after the command words.

    ``suppress`` leaves the defaults to a parent parser that has the same
    flags, so a flag given to the parent is not overwritten by a default.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("global flags")
    group.add_argument("--kubeconfig", default=default(""), help="path to the kubeconfig file")
    group.add_argument("--context", default=default(""), help="kubeconfig context to use")
    group.add_argument(
        "-n",
        "--namespace",
        default=default(DEFAULT_NAMESPACE),
        help=f"the namespace scope for this operation (default {DEFAULT_NAMESPACE})",
    )
    group.add_argument(
        "--timeout",
        type=_duration,
        default=default(DEFAULT_TIMEOUT_SECONDS),
        help="how long to wait for the cluster (default 5m)",
    )


def _leaf(
    commands: Subcommands,
    name: str,
    *,
    help: str,
    aliases: Sequence[str] = (),
    nested: bool = False,
) -> argparse.ArgumentParser:
    """A parser that runs a command; ``nested`` when its parent already has the global flags."""
    leaf = commands.add_parser(name, help=help, aliases=list(aliases))
    _global_flags(leaf, suppress=nested)
    return leaf


def _name(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("name", metavar="NAME", help=f"name of the {kind}")


def _label_selector(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    parser.add_argument(
        "-l",
        "--label-selector",
        default=argparse.SUPPRESS if suppress else "",
        help="only objects whose labels match, e.g. app=podinfo or 'tier in (web)'",
    )


def _add_get(commands: Subcommands) -> None:
    get = commands.add_parser("get", help="print the status of sources, kustomizations, ...")
    what = get.add_subparsers(dest="what", required=True, metavar="KIND")

    def leaf(
        parent: Subcommands,
        name: str,
        chosen: tuple[kinds.CliKind, ...],
        *,
        help: str,
        aliases: Sequence[str] = (),
        with_kind: bool = False,
        nested: bool = False,
    ) -> argparse.ArgumentParser:
        parser = _leaf(parent, name, help=help, aliases=aliases, nested=nested)
        parser.add_argument("name", nargs="?", metavar="NAME", help="only this object")
        parser.add_argument(
            "-A",
            "--all-namespaces",
            action="store_true",
            default=argparse.SUPPRESS if nested else False,
            help="list across all namespaces",
        )
        parser.add_argument(
            "-w", "--watch", action="store_true", help="after listing, print changes as they come"
        )
        parser.add_argument(
            "-o",
            "--output",
            choices=("table", "wide", "json", "yaml"),
            default="table",
            help="table (default), wide (adds AGE), json or yaml",
        )
        parser.add_argument("--no-header", action="store_true", help="skip the table header")
        parser.add_argument(
            "--status-selector",
            default="",
            help="only objects whose condition has this status, e.g. ready=false",
        )
        _label_selector(parser, suppress=nested)
        parser.set_defaults(func=_cmd_get, kinds=chosen, with_kind=with_kind)
        return parser

    sources = what.add_parser(
        "sources", aliases=["source"], help="sources (GitRepositories, OCIRepositories)"
    )
    _global_flags(sources, suppress=False)
    source_kind = sources.add_subparsers(dest="source_kind", metavar="SOURCE")
    leaf(source_kind, "git", (kinds.GIT_REPOSITORIES,), help="GitRepository statuses", nested=True)
    leaf(source_kind, "oci", (kinds.OCI_REPOSITORIES,), help="OCIRepository statuses", nested=True)
    leaf(
        source_kind, "helm", (kinds.HELM_REPOSITORIES,), help="HelmRepository statuses", nested=True
    )
    leaf(source_kind, "chart", (kinds.HELM_CHARTS,), help="HelmChart statuses", nested=True)
    leaf(source_kind, "bucket", (kinds.BUCKETS,), help="Bucket statuses", nested=True)
    leaf(source_kind, "all", kinds.SOURCES, help="every source kind", with_kind=True, nested=True)
    # ``fluxd get sources`` alone lists every source kind, like ``flux get sources all``.
    sources.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list across all namespaces"
    )
    _label_selector(sources, suppress=False)
    sources.set_defaults(
        func=_cmd_get,
        kinds=kinds.SOURCES,
        with_kind=True,
        name=None,
        watch=False,
        output="table",
        no_header=False,
        status_selector="",
    )
    leaf(
        what,
        "kustomizations",
        (kinds.KUSTOMIZATIONS,),
        help="Kustomization statuses",
        aliases=["kustomization", "ks"],
    )
    leaf(what, "receivers", (kinds.RECEIVERS,), help="Receiver statuses", aliases=["receiver"])
    leaf(what, "alerts", (kinds.ALERTS,), help="Alert statuses", aliases=["alert"])
    leaf(
        what,
        "alert-providers",
        (kinds.PROVIDERS,),
        help="Provider statuses",
        aliases=["alert-provider", "providers", "provider"],
    )
    leaf(what, "all", kinds.ALL, help="every kind fluxd serves", with_kind=True)


def _kind_leaves(
    verb: argparse.ArgumentParser,
    *,
    handler: Handler,
    chosen: Sequence[kinds.CliKind],
    extra: Callable[[argparse.ArgumentParser, kinds.CliKind], None] | None = None,
    optional_name: bool = False,
) -> None:
    """``<verb> source git NAME``, ``<verb> kustomization NAME``, ... for each kind."""
    what = verb.add_subparsers(dest="what", required=True, metavar="KIND")
    source_words: Subcommands | None = None
    for kind in chosen:
        if kind.words[0] == "source":
            if source_words is None:
                source = what.add_parser("source", help="sources (git, oci)")
                source_words = source.add_subparsers(
                    dest="source_kind", required=True, metavar="SOURCE"
                )
            parent, word = source_words, kind.words[1]
        else:
            parent, word = what, kind.words[0]
        aliases = (
            [a for a in kind.api.short_names if a != word] if kind is kinds.KUSTOMIZATIONS else []
        )
        leaf = _leaf(parent, word, help=f"a {kind.kind}", aliases=aliases)
        if optional_name:
            leaf.add_argument("name", nargs="?", metavar="NAME", help=f"name of the {kind.kind}")
        else:
            _name(leaf, kind.kind)
        leaf.set_defaults(func=handler, kind=kind)
        if extra is not None:
            extra(leaf, kind)


def _add_reconcile(commands: Subcommands) -> None:
    verb = commands.add_parser("reconcile", help="reconcile an object now and wait for the result")

    def with_source(leaf: argparse.ArgumentParser, kind: kinds.CliKind) -> None:
        if kind is kinds.KUSTOMIZATIONS:
            leaf.add_argument(
                "--with-source", action="store_true", help="reconcile the source first"
            )

    _kind_leaves(
        verb,
        handler=_cmd_reconcile,
        chosen=(
            kinds.GIT_REPOSITORIES,
            kinds.OCI_REPOSITORIES,
            kinds.HELM_REPOSITORIES,
            kinds.HELM_CHARTS,
            kinds.KUSTOMIZATIONS,
            kinds.RECEIVERS,
        ),
        extra=with_source,
    )


def _add_suspend_resume(commands: Subcommands) -> None:
    chosen = (
        kinds.GIT_REPOSITORIES,
        kinds.OCI_REPOSITORIES,
        kinds.HELM_REPOSITORIES,
        kinds.HELM_CHARTS,
        kinds.BUCKETS,
        kinds.KUSTOMIZATIONS,
        kinds.RECEIVERS,
        kinds.ALERTS,
    )
    suspend = commands.add_parser("suspend", help="stop reconciling an object")
    _kind_leaves(suspend, handler=_cmd_suspend, chosen=chosen)
    resume = commands.add_parser("resume", help="reconcile a suspended object again and wait")

    def wait_flag(leaf: argparse.ArgumentParser, kind: kinds.CliKind) -> None:
        leaf.add_argument(
            "--wait",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="wait for the reconcile to finish (default true)",
        )

    _kind_leaves(resume, handler=_cmd_resume, chosen=chosen, extra=wait_flag)


def _add_build_diff(commands: Subcommands) -> None:
    for verb_name, handler, help_text in (
        ("build", _cmd_build, "render a local directory as the daemon would"),
        ("diff", _cmd_diff, "show what applying a local directory would change"),
    ):
        verb = commands.add_parser(verb_name, help=help_text)
        what = verb.add_subparsers(dest="what", required=True, metavar="KIND")
        leaf = _leaf(what, "kustomization", help="a Kustomization", aliases=["ks"])
        _name(leaf, "Kustomization")
        leaf.add_argument("--path", required=True, help="local directory to render in its place")
        leaf.add_argument(
            "--kustomization-file",
            default="",
            help="the Kustomization's YAML, instead of the cluster's",
        )
        leaf.add_argument(
            "--decryption-key-file",
            action="append",
            default=[],
            help="private key for spec.decryption (age identities, or OpenPGP if it ends .asc); "
            "repeatable",
        )
        if verb_name == "build":
            leaf.add_argument(
                "--dry-run",
                action="store_true",
                help="do not read the cluster (needs --kustomization-file)",
            )
        else:
            leaf.set_defaults(dry_run=False)
        leaf.set_defaults(func=handler)


def _add_export(commands: Subcommands) -> None:
    verb = commands.add_parser("export", help="print objects as clean YAML, as flux export")

    def flags(leaf: argparse.ArgumentParser, kind: kinds.CliKind) -> None:
        leaf.add_argument("--all", action="store_true", help="select all resources")
        if kind is kinds.GIT_REPOSITORIES:
            leaf.add_argument(
                "--with-credentials",
                action="store_true",
                help="also export the Secret the source authenticates with",
            )

    _kind_leaves(
        verb,
        handler=_cmd_export,
        chosen=(
            kinds.GIT_REPOSITORIES,
            kinds.KUSTOMIZATIONS,
            kinds.RECEIVERS,
            kinds.ALERTS,
            kinds.PROVIDERS,
        ),
        extra=flags,
        optional_name=True,
    )


def _create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval", type=_duration, default=60.0, help="source sync interval (default 1m0s)"
    )
    parser.add_argument("--export", action="store_true", help="export in YAML format to stdout")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        help="set labels on the resource (label1=value1,label2=value2; repeatable)",
    )


def _add_create(commands: Subcommands) -> None:
    verb = commands.add_parser("create", help="create or update objects, or --export them")
    what = verb.add_subparsers(dest="what", required=True, metavar="KIND")
    source = what.add_parser("source", help="sources (git)")
    source_kinds = source.add_subparsers(dest="source_kind", required=True, metavar="SOURCE")
    git = _leaf(source_kinds, "git", help="a GitRepository")
    _name(git, "GitRepository")
    _create_flags(git)
    git.add_argument("--url", default="", help="git address, e.g. https://host/org/repo")
    git.add_argument("--branch", default="", help="git branch")
    git.add_argument("--tag", default="", help="git tag")
    git.add_argument("--tag-semver", default="", help="git tag semver range")
    git.add_argument("--commit", default="", help="git commit")
    git.add_argument("--ref-name", default="", help="git reference name")
    git.add_argument("--secret-ref", default="", help="the name of an existing auth Secret")
    git.add_argument(
        "--ignore-paths", action="append", default=[], help="paths to ignore (gitignore format)"
    )
    git.add_argument("--recurse-submodules", action="store_true", help="also check out submodules")
    git.set_defaults(func=_cmd_create, kind=kinds.GIT_REPOSITORIES)

    ks = _leaf(what, "kustomization", help="a Kustomization", aliases=["ks"])
    _name(ks, "Kustomization")
    _create_flags(ks)
    ks.add_argument("--source", default="", help="source: [<kind>/]<name>[.<namespace>]")
    ks.add_argument("--path", default="./", help="path to the directory, beginning with ./")
    ks.add_argument("--prune", action="store_true", help="enable garbage collection")
    ks.add_argument("--wait", action="store_true", help="health-check all applied resources")
    ks.add_argument(
        "--health-check-timeout",
        type=_duration,
        default=120.0,
        help="timeout of health checking operations (default 2m0s)",
    )
    ks.add_argument("--target-namespace", default="", help="namespace of all applied objects")
    ks.add_argument(
        "--depends-on",
        action="append",
        default=[],
        help="Kustomizations that must be ready first: <name> or <namespace>/<name>",
    )
    ks.add_argument("--service-account", default="", help="the service account to impersonate")
    ks.add_argument(
        "--retry-interval", type=_duration, default=0.0, help="retry interval after a failure"
    )
    ks.set_defaults(func=_cmd_create, kind=kinds.KUSTOMIZATIONS)

    receiver = _leaf(what, "receiver", help="a Receiver")
    _name(receiver, "Receiver")
    _create_flags(receiver)
    receiver.add_argument("--type", default="", help="the receiver type, e.g. gitea, github")
    receiver.add_argument("--secret-ref", default="", help="the Secret holding the token")
    receiver.add_argument(
        "--resource", action="append", default=[], help="Kind/name to reconcile (repeatable)"
    )
    receiver.add_argument(
        "--event", action="append", default=[], help="events to accept (repeatable)"
    )
    receiver.set_defaults(func=_cmd_create, kind=kinds.RECEIVERS)

    secret = what.add_parser("secret", help="Secrets for sources")
    secret_kinds = secret.add_subparsers(dest="secret_kind", required=True, metavar="SECRET")
    git_secret = _leaf(secret_kinds, "git", help="a Git basic-auth or bearer-token Secret")
    _name(git_secret, "Secret")
    _create_flags(git_secret)
    git_secret.add_argument("--url", default="", help="git address (http or https)")
    git_secret.add_argument("-u", "--username", default="", help="basic authentication username")
    git_secret.add_argument("-p", "--password", default="", help="basic authentication password")
    git_secret.add_argument("--bearer-token", default="", help="bearer token for HTTP/S")
    git_secret.add_argument("--ca-crt-file", default="", help="TLS CA certificate file")
    git_secret.set_defaults(func=_cmd_create, kind=None)


def _add_tree_trace(commands: Subcommands) -> None:
    verb = commands.add_parser("tree", help="print what a Kustomization manages, as a tree")
    what = verb.add_subparsers(dest="what", required=True, metavar="KIND")
    leaf = _leaf(what, "kustomization", help="a Kustomization", aliases=["ks"])
    _name(leaf, "Kustomization")
    leaf.add_argument("--compact", action="store_true", help="only Flux objects")
    leaf.add_argument(
        "-o", "--output", choices=("", "json", "yaml"), default="", help="json or yaml"
    )
    leaf.set_defaults(func=_cmd_tree)

    trace = _leaf(commands, "trace", help="which Kustomization and source manage an object")
    trace.add_argument(
        "objects",
        nargs="*",
        metavar="OBJECT",
        help="<resource> <name> [<name> ...], <resource>/<name> ..., or names with --kind",
    )
    trace.add_argument("--kind", default="", help="the object's kind, e.g. Deployment")
    trace.add_argument("--api-version", default="", help="the object's apiVersion, e.g. apps/v1")
    trace.set_defaults(func=_cmd_trace)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="fluxd",
        description="GitOps for small clusters: Flux's source, kustomize and notification "
        "controllers and Reloader-compatible restarts in one daemon.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    settings_module.add_arguments(run)
    run.set_defaults(func=_cmd_run)

    gen = commands.add_parser("gen", help="generate manifests")
    gen_what = gen.add_subparsers(dest="what", required=True, metavar="WHAT")
    gen_what.add_parser("crds", help="the CustomResourceDefinitions, as YAML").set_defaults(
        func=_cmd_gen_crds
    )
    gen_what.add_parser("config", help="the documented config file").set_defaults(
        func=_cmd_gen_config
    )

    _add_get(commands)
    _add_reconcile(commands)
    _add_suspend_resume(commands)
    _add_build_diff(commands)
    _add_export(commands)
    _add_create(commands)
    _add_tree_trace(commands)

    events = _leaf(commands, "events", help="Kubernetes events of fluxd's objects")
    events.add_argument(
        "--for", dest="for_object", default="", help="only Kind/name, e.g. Kustomization/apps"
    )
    events.add_argument("-A", "--all-namespaces", action="store_true", help="in all namespaces")
    events.add_argument("-w", "--watch", action="store_true", help="print new events as they come")
    events.add_argument(
        "--types", default="", help="only these types, e.g. Warning or Normal,Warning"
    )
    events.add_argument("--no-header", action="store_true", help="skip the table header")
    events.set_defaults(func=_cmd_events)

    check = _leaf(commands, "check", help="check the cluster and the running daemon")
    check.add_argument("--pre", action="store_true", help="only the prerequisites")
    check.add_argument("--webhook-url", default="", help="also check this receiver URL answers")
    check.add_argument(
        "--service-account",
        default="fluxd",
        help="fluxd's ServiceAccount in --namespace whose permissions to check; "
        "'' checks the current credentials",
    )
    check.add_argument("--lease-name", default=DEFAULT_LEASE_NAME, help="the leader Lease")
    check.add_argument("--lease-namespace", default="", help="its namespace (default --namespace)")
    check.set_defaults(func=_cmd_check)

    version_command = _leaf(commands, "version", help="print the version")
    version_command.add_argument(
        "--server", action="store_true", help="also print the API server's Kubernetes version"
    )
    version_command.set_defaults(func=_cmd_version)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code
