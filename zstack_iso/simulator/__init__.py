"""A local, wire-faithful ZStack management node for the ISO surface (see docs/zstack-api.md).

    from zstack_iso.simulator import run_simulator
    with run_simulator(port=0, job_seconds=0.02) as sim:
        sim.url   # "http://127.0.0.1:<port>"; the ZStack API is at sim.url + "/zstack/v1"
        sim.node  # the domain model (ZStackNode): state and rules, no HTTP
    with run_simulator(port=0, process=True) as sim:  # in a process of its own
        sim.url, sim.pid

Run it from a shell with `python -m zstack_iso.simulator --help` (`--background` to leave it running).
"""

from .errors import ApiError
from .models import ZStackNode
from .process import SimulatorProcess, SimulatorStartError
from .seed import DEFAULT_SEED_PATH, SeedError, load_seed_file
from .server import Simulator, run_simulator

__all__ = [
    "DEFAULT_SEED_PATH",
    "ApiError",
    "SeedError",
    "Simulator",
    "SimulatorProcess",
    "SimulatorStartError",
    "ZStackNode",
    "load_seed_file",
    "run_simulator",
]
