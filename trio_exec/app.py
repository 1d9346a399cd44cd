"""The app nursery: the transport task and the signal task (DESIGN §2).

Invariant: when the transport ends (stdin EOF) or SIGINT/SIGTERM arrives, the nursery is
cancelled; running calls see trio cancellation and the runner kills their process groups.
"""

from __future__ import annotations

import functools
import os
import signal
from typing import TYPE_CHECKING, Any

import trio
from loguru import logger
from mcp.server.lowlevel.server import Server

from trio_exec import __version__, compose
from trio_exec.audit import Audit, setup_logging
from trio_exec.config import KILL_GRACE_S, Settings
from trio_exec.private_dirs import private_dir
from trio_exec.sandbox import Sandbox
from trio_exec.server import Service, build_server
from trio_exec.tools import Tool
from trio_exec.transports.replies import FLUSH_S, Replies
from trio_exec.transports.stdio import Wire, serve_stdio

if TYPE_CHECKING:
    from trio_exec.workers import Worker


async def _watch_signals(
    stopping: trio.Event,
    app_scope: trio.CancelScope,
    graceful: bool,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """First SIGINT/SIGTERM: stop (network transports: after the grace), answering every call; a second: now."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            if not stopping.is_set():
                if graceful:
                    logger.info("received {}: no new connections; running calls may finish", name)
                else:
                    logger.info("received {}: stopping running commands, answering their calls", name)
                stopping.set()
                continue
            logger.info("received {}, shutting down", name)
            app_scope.cancel()
            return


async def _stop_stdio(service: Service, replies: Replies, stopping: trio.Event, app_scope: trio.CancelScope) -> None:
    """stdio has no grace: stop the commands now, let each call answer ``cancelled``, then end."""
    await stopping.wait()
    service.guards.shutdown()
    with trio.move_on_after(KILL_GRACE_S + FLUSH_S):
        await service.guards.wait_idle()
        await replies.all_answered()
    app_scope.cancel()


async def serve(
    service: Service,
    *,
    wire: Wire | None = None,
    stopping: trio.Event | None = None,
    worker: Worker | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until the client goes away (stdio) or a signal asks us to stop; reports where.

    ``wire`` replaces stdin/stdout for stdio; setting ``stopping`` is what a first SIGINT/SIGTERM does (an
    embedding or a test stops the server through it, as a signal would). A ``worker`` of ``--workers`` serves
    on its supervisor's socket, follows its table and stops when it goes away.
    """
    server = build_server(service)
    stopping = trio.Event() if stopping is None else stopping
    graceful = service.settings.transport != "stdio"
    async with trio.open_nursery() as nursery:
        await nursery.start(_watch_signals, stopping, nursery.cancel_scope, graceful)
        await nursery.start(service.guards.breaker_task)
        await nursery.start(service.jobs.serve)
        if worker is not None:
            await nursery.start(worker.serve_control, stopping)
        where = await nursery.start(_transport, server, service, stopping, nursery.cancel_scope, wire, worker)
        if worker is None:
            logger.info("serving {} tool(s) on {}", len(service.tools), where)
        else:
            logger.info("serving on {} (pid {}, one of {} workers)", where, os.getpid(), worker.count)
            worker.ready(where)
        task_status.started(where)


async def _transport(
    server: Server[Any],
    service: Service,
    stopping: trio.Event,
    app_scope: trio.CancelScope,
    wire: Wire | None,
    worker: Worker | None,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the configured transport; when it ends, the whole app ends (running calls are cancelled)."""
    s = service.settings
    if s.transport == "stdio":
        replies = Replies()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_stdio, service, replies, stopping, app_scope)
            await serve_stdio(server, replies, wire=wire, task_status=task_status)
            nursery.cancel_scope.cancel()
        logger.info("the client went away (stdin or stdout closed), shutting down")
    elif s.transport == "streamable-http":
        from trio_exec.transports.http import serve_http  # the HTTP stack is imported only when used

        relay = _Relay(task_status, (s.network.root_path or "") + "/mcp")
        await serve_http(server, service, s.network.auth_tokens, stopping, worker=worker, task_status=relay)
    else:
        from trio_exec.transports.websocket import serve_websocket

        listen_fd = None if worker is None else worker.listen_fd
        await serve_websocket(server, service, s.network.auth_tokens, stopping, listen_fd=listen_fd,
                              task_status=task_status)  # fmt: skip
    app_scope.cancel()


class _Relay:
    """Turn hypercorn's list of bound URLs into one endpoint string for ``task_status``."""

    def __init__(self, target: trio.TaskStatus[str], path: str) -> None:
        self.target = target
        self.path = path

    def started(self, urls: list[str] | None = None) -> None:
        self.target.started(" ".join(f"{u}{self.path}" for u in urls or []))


def run(settings: Settings, tools: list[Tool], warnings: list[str], box: Sandbox, worker: Worker | None = None) -> int:
    """Configure logging and serve; returns the process exit code."""
    secrets = [settings.network.auth_token] if settings.network.auth_token else []
    setup_logging(settings.log.level, settings.log.format, secrets, tag=None if worker is None else worker.name)
    stamp = {} if worker is None else {"worker": worker.index}
    audit = Audit(settings.log.audit_log, settings.log.audit_rotate, secrets, fail=settings.log.audit_fail,
                  stamp=stamp)  # fmt: skip
    s = settings
    first = worker is None or worker.index == 0  # the others would repeat it word for word
    logger.log(
        "INFO" if first else "DEBUG",
        "trio-exec {} starting: transport={} tools={} base_path={} path_validation={} blacklist={} "
        "allow_dangerous={} timeout={}s/max {}s output_cap={}B rate={} max_concurrent={} "
        "circuit={}x/{}s limits={} audit={} (fail {}) sandbox={}",
        __version__,
        s.transport,
        ",".join(t.name for t in tools if not t.pipeline),
        s.policy.base_path or "-",
        "on" if s.policy.validate_paths else "off",
        len(s.policy.blacklist),
        s.policy.allow_dangerous,
        s.runner.cmd_timeout_s,
        s.runner.max_timeout_s,
        s.runner.max_output_bytes,
        f"{s.guards.rate_limit_rps:g}/s burst {s.guards.rate_limit_burst}" if s.guards.rate_limit_rps else "off",
        s.guards.max_concurrent,
        s.guards.circuit_threshold,
        s.guards.circuit_timeout_s,
        "on" if s.runner.limits.any() else "off",
        s.log.audit_log or "off",
        s.log.audit_fail,
        box.report.layer,
    )
    for w in warnings if first else ():
        logger.warning(w)
    # An empty private HOME for shell_execute: no planted ~/.gitconfig reaches its commands.
    try:
        with private_dir("trio-exec-home-") as home:
            service = compose.build_service(settings, tools, audit, box, private_home=home)
            trio.run(functools.partial(serve, service, worker=worker))
    finally:
        audit.close()
    logger.info("stopped")
    return 0
