"""A local, wire-faithful ZStack management node for the ISO surface (see shared/zstack-api.md).

    from zstack_iso.simulator import run_simulator
    with run_simulator(port=0, job_seconds=0.02) as sim:
        sim.url   # "http://127.0.0.1:<port>"; the ZStack API is at sim.url + "/zstack/v1"
        sim.node  # the domain model (ZStackNode): state and rules, no HTTP

Run it from a shell with `python -m zstack_iso.simulator --help`.
"""

from .errors import ApiError
from .models import ZStackNode
from .seed import DEFAULT_SEED_PATH, SeedError, load_seed_file
from .server import Simulator, run_simulator

__all__ = [
    "DEFAULT_SEED_PATH",
    "ApiError",
    "SeedError",
    "Simulator",
    "ZStackNode",
    "load_seed_file",
    "run_simulator",
]
