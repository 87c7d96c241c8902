"""gymnasium-robotics environments (MuJoCo), registered only when the ``robotics`` extra is installed.

The paper's physics tasks are HandReach (15-d goal) and HandManipulateBlock (7-d goal); FetchReach is
the sanity task. gymnasium-robotics 1.4.2 needs mujoco 3.x (mujoco 4.0 fails at reset in
``set_joint_qpos``), which ``pip install -e ".[robotics]"`` pins to 3.3.7.

Importing gymnasium_robotics is slow and prints warnings, so nothing here runs at import time of
``reengage.envs``: :func:`require_robotics` registers the ids the first time a robotics id is built.
"""

from __future__ import annotations

import importlib

# the ids the toolkit configures (configs/robotics.yaml); HandManipulateBlock-v1 is the current
# version of the full block task (rotation and position: a 7-d goal) in gymnasium-robotics 1.4.2
ROBOTICS_IDS = ("FetchReach-v4", "HandReach-v3", "HandManipulateBlock-v1")
# ids of gymnasium-robotics's families, recognised even if not configured here
ROBOTICS_PREFIXES = ("Fetch", "Hand", "AdroitHand", "AntMaze", "PointMaze", "Kitchen")
INSTALL_HINT = 'pip install -e ".[robotics]"  (gymnasium-robotics 1.4.2 with mujoco 3.3.7)'


class RoboticsNotInstalled(ValueError):
    """A robotics environment was asked for without the ``robotics`` extra."""


def is_robotics_id(env_id: str) -> bool:
    return env_id in ROBOTICS_IDS or env_id.startswith(ROBOTICS_PREFIXES)


def require_robotics(env_id: str = "") -> None:
    """Register gymnasium-robotics's ids with gymnasium, or raise :class:`RoboticsNotInstalled`."""
    try:
        import gymnasium as gym

        module = importlib.import_module("gymnasium_robotics")
        gym.register_envs(module)
    except ImportError as error:
        what = f"env {env_id!r}" if env_id else "the robotics environments"
        raise RoboticsNotInstalled(
            f"{what} needs the robotics extra ({error}); install it with: {INSTALL_HINT}"
        ) from error


def ensure_registered(env_id: str) -> None:
    """Make ``env_id`` buildable with ``gym.make`` (registers gymnasium-robotics for its ids)."""
    if is_robotics_id(env_id):
        require_robotics(env_id)
