"""Command line: docopt-ng usage text, environment and config-file merge, ``--dry-run``, and ``main``.

The parts: ``options`` (the one table of options: flags, ``MCP_EXEC_*`` variables, config keys, defaults),
``converters`` (raw value -> setting), ``usage`` (the usage text and the one-line reading of a bad command
line), ``loading`` (the merge into ``Settings`` and the start-up checks; the only reader of the process
environment), ``dry_run`` (the report and the warnings). Every configuration error is one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from trio_exec import compose, memory, procfs
from trio_exec.cli.dry_run import dry_run_report, sandbox_lines, warnings_for
from trio_exec.cli.loading import Loaded, check_listen, detect_sandbox, load_settings
from trio_exec.cli.options import OPTIONS
from trio_exec.cli.usage import usage
from trio_exec.config import WORKER_ENV
from trio_exec.errors import ConfigError

__all__ = [
    "OPTIONS",
    "Loaded",
    "check_listen",
    "detect_sandbox",
    "dry_run_report",
    "load_settings",
    "main",
    "sandbox_lines",
    "usage",
    "warnings_for",
]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``trio-exec`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    worker = None
    try:
        if WORKER_ENV in environ:  # started by a --workers supervisor, which says what to serve
            from trio_exec.workers import Worker

            worker = Worker.handshake(environ[WORKER_ENV])
            argv = worker.argv
        loaded = load_settings(argv, environ)
        tools = compose.compile_tools(loaded.settings)
        box = detect_sandbox(loaded.settings)
        if loaded.settings.transport != "stdio" and not loaded.doctor and worker is None:
            check_listen(loaded.settings.network.bind)
    except ConfigError as e:
        print(f"trio-exec: error: {e.message}", file=sys.stderr)
        return 2
    if loaded.doctor:
        from trio_exec import doctor

        code, report = doctor.run(loaded.settings, box, sandbox_lines(box))
        print(report)  # doctor never serves MCP: stdout is for people here
        return code
    if loaded.settings.dry_run:
        print(dry_run_report(loaded, tools, box))
        return 0
    # Not even a command of our own user (an unsandboxed one, or anything else it runs) may read our
    # memory through /proc/<pid>/mem, nor our fds or environment: the kernel refuses a non-dumpable process.
    procfs.set_dumpable(False)
    memory.return_large_blocks(environ)  # a burst of large results must not leave the server big for good
    # Commands run as our user and could read /proc/<server pid>/{environ,cmdline}: blank every value there
    # but a few that are no secret and that C code may still read (SECURITY.md lists them).
    procfs.scrub_environment(lambda name: not procfs.kept_in_environ(name))
    procfs.scrub_arguments(["--auth-token"])
    if worker is None and loaded.settings.transport != "stdio" and loaded.settings.network.workers > 1:
        from trio_exec.workers import supervise

        try:
            return supervise(loaded.settings, argv, environ, len(tools))
        except ConfigError as e:
            print(f"trio-exec: error: {e.message}", file=sys.stderr)
            return 2
    from trio_exec import runner  # trio: only when serving

    runner.adopt_orphans()  # what leaves a call's process group is re-parented to us, and killed when the call ends
    from trio_exec.startup import deferred_model_builds

    with deferred_model_builds():  # the MCP SDK is slow to import: only when serving, and its types built lazily
        from trio_exec import app

    warnings = warnings_for(loaded)
    if not box.active:
        warnings.append(
            "NO SANDBOX: commands can read and write whatever this server's user can; "
            + "; ".join(p for p in box.report.problems if "WITHOUT" not in p)
        )
    return app.run(loaded.settings, tools, warnings, box, worker=worker)
