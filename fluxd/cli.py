"""The ``fluxd`` command: the daemon (``run``) and the tools around it.

User errors print one readable line and exit non-zero; no tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import anyio

from fluxd import settings as settings_module
from fluxd.settings import SettingsError


def _version() -> str:
    try:
        return version("fluxd")
    except PackageNotFoundError:
        return "unknown"


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = settings_module.load(flags=vars(args), config_file=args.config)
    except SettingsError as error:
        print(f"fluxd: {error}", file=sys.stderr)
        return 2
    from fluxd import logs
    from fluxd.controllers.assembly import assemble
    from fluxd.controllers.manager import Daemon
    from fluxd.kube.client import ConfigError

    logs.configure(level=settings.log_level, fmt=settings.log_format)
    daemon = Daemon(settings, assemble=assemble)
    try:
        return anyio.run(daemon.run)
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
    return 0


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

    commands.add_parser("version", help="print the version").set_defaults(func=_cmd_version)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
