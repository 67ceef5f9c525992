"""A VMware Cloud Director API simulator (docs/vcd-simulator.md).

``python -m sim.vcd --listen HOST:PORT --data-dir DIR [--seed FILE] [--tls]``, or in-process::

    from sim.vcd import FAULTS, SimConfig, create_app
    app = create_app(SimConfig(data_dir=path))
    app[FAULTS].task_delay_s = 2  # live fault flags
"""

from sim.vcd.app import SimConfig, create_app
from sim.vcd.faults import Faults
from sim.vcd.web import FAULTS, STORE, TASKS

__all__ = ["FAULTS", "STORE", "TASKS", "Faults", "SimConfig", "create_app"]
