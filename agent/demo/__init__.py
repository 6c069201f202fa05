"""``kilo-agent demo``: a self-contained tour of the policies on loopback (see ``tour.py``).

Layering: the demo sits beside the CLI; it uses ``agent.app``, ``agent.config``, ``agent.api``
and grpc like any app would, and nothing of the agent imports it.
"""

from agent.demo.tour import run_demo

__all__ = ["run_demo"]
