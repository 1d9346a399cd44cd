"""Start-up cost: import the MCP SDK without building every protocol type it defines.

The SDK's type modules (``mcp_types``: every protocol era, ~1,000 pydantic models) build each model's
validator when the class is created, which was most of the server's start-up (~400 of ~720 ms to the first
``tools/list`` on the machine of bench/README.md). pydantic's own ``defer_build`` setting postpones that work
to a model's first use, so a server builds only the models its clients' messages need, once each. It is
set on ``pydantic.BaseModel`` only while the SDK is imported, so models defined afterwards are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_model_builds() -> Iterator[None]:
    """While this is open, pydantic models defined (by imports) build their validators at first use."""
    import pydantic

    config = pydantic.BaseModel.model_config
    before = config.get("defer_build")
    config["defer_build"] = True
    try:
        yield
    finally:
        if before is None:
            config.pop("defer_build", None)
        else:
            config["defer_build"] = before
