"""Scrubbing secrets from /proc/self/{environ,cmdline} (in a child interpreter, to leave ours alone)."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import sys
from trio_exec import procfs
n_env = procfs.scrub_environment(lambda name: "SECRET" in name)
n_arg = procfs.scrub_arguments(["--auth-token", "--password"])
env = open("/proc/self/environ", "rb").read()
args = open("/proc/self/cmdline", "rb").read()
# the needles are built at run time: this code is itself part of the argument block
print(n_env, n_arg, b"hunter" + b"2" in env, b"s3" + b"cr3t" in args, b"pw-" + b"value" in args,
      b"TRIO_SECRET_X=" in env, b"keep" + b"-me" in args)
"""


def test_secret_values_are_blanked_and_names_kept() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CODE, "--auth-token", "s3cr3t", "--password=pw-value", "keep-me"],
        env={**os.environ, "TRIO_SECRET_X": "hunter2"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.split() == ["1", "2", "False", "False", "False", "True", "True"]
